#!/bin/sh
# Builds hearth's Debian packages from this checkout (docs/PACKAGING.md).
#   tools/deb.sh [--no-lint] [OUTDIR]      OUTDIR defaults to build/deb
# OUTDIR gets hearth_<version>_<arch>.deb, hearth-relay_…, their -dbgsym .ddeb, the
# .buildinfo and .changes. The build runs in a copy of the tree (OUTDIR/src), so the
# checkout's build/ and debian/ stay untouched, and edits not yet committed are packaged
# as they stand. lintian then checks the packages: an error fails the build.
set -eu

lint=yes
if [ "${1:-}" = "--no-lint" ]; then
	lint=no
	shift
fi
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/deb}
mkdir -p "$out"
out=$(cd "$out" && pwd)

for tool in dpkg-buildpackage dh; do
	command -v "$tool" >/dev/null || {
		echo "deb: $tool is missing; 'tools/deps.sh deb' installs the packaging tools" >&2
		exit 1
	}
done
if [ "$lint" = yes ] && ! command -v lintian >/dev/null; then
	echo "deb: lintian is missing; 'tools/deps.sh deb' installs it (or pass --no-lint)" >&2
	exit 1
fi

version=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
src=$out/src/hearth-$version
rm -rf "$out/src"
mkdir -p "$src"

# What git would commit (tracked and new files, not ignored ones); outside a git
# checkout, everything but the build output.
cd "$top"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf - | tar -xf - -C "$src"
else
	tar --exclude=./build --exclude=./var --exclude=./.git -cf - . | tar -xf - -C "$src"
fi

rm -f "$out"/hearth_* "$out"/hearth-*_*
(cd "$src" && dpkg-buildpackage -us -uc -b --jobs-try=auto)
mv "$out"/src/hearth*_"$version"_* "$out"/
changes=$out/hearth_${version}_$(dpkg-architecture -qDEB_HOST_ARCH).changes

if [ "$lint" = yes ]; then
	echo "deb: lintian $changes"
	# Errors fail; warnings and notes are shown (docs/PACKAGING.md says which remain and why).
	lintian --fail-on error --display-info "$changes"
fi
echo "deb: packages in $out:"
ls -1 "$out"/*.deb
