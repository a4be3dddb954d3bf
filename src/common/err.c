/* Error codes and their wire names (PROTOCOL.md §2.2, §3.3, §5.3). */
#include <stdio.h>
#include <string.h>

#include "hearth/err.h"

static const char *const code_names[HERR__COUNT] = {
	[HERR_OK] = "ok",
	[HERR_BAD_REQUEST] = "bad_request",
	[HERR_UNKNOWN_COMMAND] = "unknown_command",
	[HERR_NOT_FOUND] = "not_found",
	[HERR_FORBIDDEN] = "forbidden",
	[HERR_BAD_EXPR] = "bad_expr",
	[HERR_CONFIG_ERROR] = "config_error",
	[HERR_STORE_FULL] = "store_full",
	[HERR_STORE_ERROR] = "store_error",
	[HERR_GONE] = "gone",
	[HERR_TOO_LARGE] = "too_large",
	[HERR_BAD_JSON] = "bad_json",
	[HERR_BAD_FIELD] = "bad_field",
	[HERR_UNKNOWN_FIELD] = "unknown_field",
	[HERR_TS_IN_FUTURE] = "ts_in_future",
	[HERR_IO] = "io_error",
	[HERR_NOMEM] = "no_memory",
};

const char *herr_name(enum herr_code code)
{
	if ((unsigned)code >= HERR__COUNT || !code_names[code])
		return "internal";
	return code_names[code];
}

int herr_vset(struct herr *err, enum herr_code code, const char *fmt, va_list ap)
{
	if (err) {
		err->code = code;
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	}
	return -1;
}

int herr_set(struct herr *err, enum herr_code code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	herr_vset(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

void herr_clear(struct herr *err)
{
	err->code = HERR_OK;
	err->msg[0] = '\0';
}
