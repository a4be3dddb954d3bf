/*
 * Lines of the Prometheus text exposition format, for whoever has counters to
 * show: the daemon's `metrics` (hearth/metrics.h) and the cluster's part of it.
 */
#ifndef HEARTH_EXPOSITION_H
#define HEARTH_EXPOSITION_H

struct wbuf;

/* HELP and TYPE, once per family, before its values. */
void metric_family(struct wbuf *out, const char *name, const char *type, const char *help);
/* labels: NULL, or the text between the braces (name="value",...). */
void metric_value(struct wbuf *out, const char *name, const char *labels, double value);

#endif
