/* Prometheus text exposition of the daemon's counters (PROTOCOL.md §5.7 `metrics`). */
#ifndef HEARTH_METRICS_H
#define HEARTH_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct server;
struct wbuf;

/* A small writer for the exposition format: HELP and TYPE once per family. */
void metric_family(struct wbuf *out, const char *name, const char *type, const char *help);
void metric_value(struct wbuf *out, const char *name, const char *labels, double value);

/* Renders every metric of the daemon into out. */
void metrics_render(struct server *srv, struct wbuf *out);

#endif
