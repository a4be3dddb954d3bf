/*
 * Errors travel as a code plus a message, filled where the fault is found and
 * reported once at the edge (control answer, ingest reply, log line).
 */
#ifndef HEARTH_ERR_H
#define HEARTH_ERR_H

#include <stdarg.h>

enum herr_code {
	HERR_OK = 0,
	HERR_BAD_REQUEST,
	HERR_UNKNOWN_COMMAND,
	HERR_NOT_FOUND,
	HERR_FORBIDDEN,
	HERR_BAD_EXPR,
	HERR_CONFIG_ERROR,
	HERR_STORE_FULL,
	HERR_STORE_ERROR,
	HERR_GONE,
	HERR_TOO_LARGE,
	/* event validation (PROTOCOL.md §2.2) */
	HERR_BAD_JSON,
	HERR_BAD_FIELD,
	HERR_UNKNOWN_FIELD,
	HERR_TS_IN_FUTURE,
	/* local to programs */
	HERR_IO,
	HERR_NOMEM,
	HERR__COUNT
};

struct herr {
	enum herr_code code;
	char msg[256];
};

/* Sets err (if not NULL) and returns -1, so callers can `return herr_set(...)`. */
int herr_set(struct herr *err, enum herr_code code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int herr_vset(struct herr *err, enum herr_code code, const char *fmt, va_list ap);
void herr_clear(struct herr *err);

/* The wire name of a code ("bad_request", "store_full", ...). */
const char *herr_name(enum herr_code code);

#endif
