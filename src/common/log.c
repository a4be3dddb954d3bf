/*
 * Plain log lines on stderr with the level. Under systemd the journal gets
 * them with their priority (notify.c switches the sink).
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include "hearth/log.h"

static const char *log_ident = "hearth";
/* atomic: a reload sets it on the loop thread while other threads log */
static atomic_int log_threshold = LOG_LEVEL_INFO;
static int log_to_journal;

/* systemd sets JOURNAL_STREAM=dev:ino when stderr is its journal stream. */
static int stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat sb;

	if (!env || sscanf(env, "%llu:%llu", &dev, &ino) != 2 || fstat(2, &sb) < 0)
		return 0;
	return (unsigned long long)sb.st_dev == dev && (unsigned long long)sb.st_ino == ino;
}

static int syslog_priority(enum log_level level)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	return prio[level];
}

static const char *const level_names[] = { "error", "warning", "info", "debug" };

void log_init(const char *ident, enum log_level level)
{
	log_ident = ident;
	atomic_store_explicit(&log_threshold, (int)level, memory_order_relaxed);
	log_to_journal = stderr_is_journal();
}

void log_set_level(enum log_level level)
{
	atomic_store_explicit(&log_threshold, (int)level, memory_order_relaxed);
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

static void log_emit_fields(enum log_level level, const struct log_fields *f, const char *fmt,
			    va_list ap)
{
	char line[1024];

	if ((int)level > atomic_load_explicit(&log_threshold, memory_order_relaxed))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (!log_to_journal) {
		fprintf(stderr, "%s: %s: %s\n", log_ident, level_names[level], line);
		return;
	}
	/* structured fields, so that `journalctl -u hearthd RULE=...` finds them */
	char msg[1100], prio[32], ident[64], rule[64], customer[160], seq[48], err[32];
	struct iovec iov[7];
	int n = 0;
#define FIELD(buf, ...) do { \
		int len = snprintf(buf, sizeof(buf), __VA_ARGS__); \
		iov[n].iov_base = buf; \
		iov[n++].iov_len = (size_t)len < sizeof(buf) ? (size_t)len : sizeof(buf) - 1; \
	} while (0)
	FIELD(msg, "MESSAGE=%s", line);
	FIELD(prio, "PRIORITY=%d", syslog_priority(level));
	FIELD(ident, "SYSLOG_IDENTIFIER=%s", log_ident);
	if (f && f->rule)
		FIELD(rule, "RULE=%s", f->rule);
	if (f && f->customer)
		FIELD(customer, "CUSTOMER=%s", f->customer);
	if (f && f->seq)
		FIELD(seq, "SEQ=%llu", f->seq);
	if (f && f->err)
		FIELD(err, "ERRNO=%d", f->err);
#undef FIELD
	sd_journal_sendv(iov, n);
}

static void log_emit(enum log_level level, const char *fmt, va_list ap)
{
	log_emit_fields(level, NULL, fmt, ap);
}

void log_with(enum log_level level, const struct log_fields *fields, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_emit_fields(level, fields, fmt, ap);
	va_end(ap);
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
