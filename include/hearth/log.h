/*
 * Logging: "subsystem, what failed 'thing' (reason)". Libraries stay silent and
 * return errors; one failure is logged once, where it is handled.
 */
#ifndef HEARTH_LOG_H
#define HEARTH_LOG_H

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Fields the journal indexes: journalctl -u hearthd RULE=customer_cooling */
struct log_fields {
	const char *rule;
	const char *customer;
	unsigned long long seq;
	int err;
};

/* Logs to the journal when stderr is systemd's journal stream, else to stderr. */
void log_init(const char *ident, enum log_level level);
void log_set_level(enum log_level level);
/* Parses "error", "warning", "info", "debug"; -1 if unknown. */
int log_level_parse(const char *name);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_with(enum log_level level, const struct log_fields *fields, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
