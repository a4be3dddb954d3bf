#!/bin/sh
# Draws how hearth's figures grow with the store (docs/perf-scaling.svg) from the
# growth data hearth-bench writes after a run (build/bench-scaling.dat): one row per
# store it measured, customers on x, log-log, with the issue 6 budgets as dashed lines.
#
#   tools/bench/plot.sh [DATA [OUT]]        (make bench-plot)
#
# Needs gnuplot (Debian: gnuplot-nox, installed by tools/deps.sh).
set -eu

data=${1:-build/bench-scaling.dat}
out=${2:-docs/perf-scaling.svg}

if ! command -v gnuplot >/dev/null 2>&1; then
	echo "plot: gnuplot is missing; install it with: apt-get install gnuplot-nox" >&2
	exit 1
fi
if [ ! -s "$data" ]; then
	echo "plot: no growth data at $data; run 'make bench' (or bench-quick) first" >&2
	exit 1
fi
# the bench's mode, from the data file's "# mode: quick|full" line
mode=$(sed -n 's/^# mode: *//p' "$data" | head -n 1)

gnuplot <<EOF
set terminal svg size 1000,440 dynamic enhanced font "sans,11" background "white"
set output "$out"
set datafile missing "NaN"
set logscale xy
set grid xtics ytics mxtics mytics lc rgb "#dddddd"
set key top left box opaque
set offsets graph 0.08, graph 0.08, graph 0.15, graph 0.15
set xlabel "customers in the store"
set format x "10^{%L}"
set format y "10^{%L}"
set multiplot layout 1,2 title "hearth-bench, ${mode:-unknown} mode: how the figures grow with the store (dashed: budgets at 1M customers)"

set title "time (ms): lower is better"
set ylabel "ms"
plot "$data" using 2:4 with linespoints lw 2 pt 7 lc rgb "#1b9e77" title "tick, nothing due", \
     "$data" using 2:5 with linespoints lw 2 pt 5 lc rgb "#d95f02" title "tick, 1% due", \
     "$data" using 2:(\$6 * 1000) with linespoints lw 2 pt 9 lc rgb "#7570b3" title "full re-evaluation", \
     1 with lines dt 2 lc rgb "#1b9e77" notitle, \
     100 with lines dt 2 lc rgb "#d95f02" notitle, \
     2000 with lines dt 2 lc rgb "#7570b3" notitle

set title "throughput (events/s): higher is better"
set ylabel "events/s"
plot "$data" using 2:7 with linespoints lw 2 pt 7 lc rgb "#e7298a" title "durable ingest over ZeroMQ", \
     "$data" using 2:8 with linespoints lw 2 pt 5 lc rgb "#66a61e" title "hearthctl import (CSV)", \
     200000 with lines dt 2 lc rgb "#e7298a" notitle, \
     100000 with lines dt 2 lc rgb "#66a61e" notitle
unset multiplot
EOF
echo "plot: $out drawn from $data (${mode:-unknown} mode)"
