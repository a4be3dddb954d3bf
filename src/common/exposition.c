/* Prometheus exposition lines; see include/hearth/exposition.h. */
#include <stdio.h>

#include "hearth/codec.h"
#include "hearth/exposition.h"

void metric_family(struct wbuf *out, const char *name, const char *type, const char *help)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
	wbuf_put(out, line, (size_t)n);
}

void metric_value(struct wbuf *out, const char *name, const char *labels, double value)
{
	char line[512];
	int n = snprintf(line, sizeof(line), "%s%s%s%s %.17g\n", name, labels ? "{" : "",
			 labels ? labels : "", labels ? "}" : "", value);
	wbuf_put(out, line, (size_t)n);
}
