/*
 * libFuzzer: a rule expression through the lexer, parser and type checker, and
 * whatever compiles is evaluated against a customer with some history.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/config.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/expr.h"
#include "hearth/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char cfg_text[] =
	"events:\n"
	"  sets: {touch: [contact, call, visit]}\n"
	"  cases:\n"
	"    complaint: {open: complaint, close: complaint_resolved}\n"
	"    promise: {open: promise, close: promise_kept, due: due}\n";

static struct cust *sample(const struct config *cfg)
{
	static const char *const types[] = { "call", "visit", "complaint", "promise", "purchase", "profile" };
	struct cust *c = cust_new("F1", 2);

	for (int i = 0; c && i < 40; i++) {
		struct event ev = { .ts = 1700000000000LL + i * 86400000LL, .customer = "F1", .customer_len = 2 };
		ev.type = types[i % 6];
		ev.type_len = strlen(ev.type);
		ev.ref = "R1";
		ev.ref_len = 2;
		ev.attrs_json = i % 6 == 5 ? "{\"tier\":\"B\",\"value\":12}" : "{\"due\":1700100000000,\"amount\":3}";
		ev.attrs_len = strlen(ev.attrs_json);
		cust_apply(c, &ev, cfg);
	}
	return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct config *cfg;
	static struct cust *c;
	char msg[256], *src;
	size_t pos;

	if (!cfg) {
		cfg = config_load_string(cfg_text, sizeof(cfg_text) - 1, "fuzz", msg, sizeof(msg));
		c = sample(cfg);
	}
	if (!cfg || !c || !(src = malloc(size + 1)))
		return 0;
	memcpy(src, data, size);
	src[size] = '\0';
	struct expr *e = expr_compile(src, cfg, msg, sizeof(msg), &pos);
	if (e) {
		struct eval_env env = { .c = c, .now = 1705000000000LL };
		struct value v;
		int64_t next;
		expr_eval(e, &env, &v, &next);
		expr_free(e);
	} else if (pos > size) {
		__builtin_trap(); /* an error must point inside the text */
	}
	free(src);
	return 0;
}
