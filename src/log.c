/*
 * Plain log lines on stderr with the level. Under systemd the journal gets
 * them with their priority (notify.c switches the sink).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "hearth/log.h"

static const char *log_ident = "hearth";
static enum log_level log_threshold = LOG_LEVEL_INFO;

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_init(const char *ident, enum log_level level)
{
	log_ident = ident;
	log_threshold = level;
}

void log_set_level(enum log_level level)
{
	log_threshold = level;
}

int log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(name, "warn") == 0)
		return LOG_LEVEL_WARNING;
	return -1;
}

static void log_emit(enum log_level level, const char *fmt, va_list ap)
{
	char line[1024];

	if (level > log_threshold)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "%s: %s: %s\n", log_ident, level_names[level], line);
}

#define LOG_FN(fn, level)                       \
	void fn(const char *fmt, ...)           \
	{                                       \
		va_list ap;                     \
		va_start(ap, fmt);              \
		log_emit(level, fmt, ap);       \
		va_end(ap);                     \
	}

LOG_FN(log_error, LOG_LEVEL_ERROR)
LOG_FN(log_warning, LOG_LEVEL_WARNING)
LOG_FN(log_info, LOG_LEVEL_INFO)
LOG_FN(log_debug, LOG_LEVEL_DEBUG)
