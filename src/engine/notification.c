/*
 * Notification bodies (see include/hearth/notification.h), written straight
 * into a buffer: the writer thread builds one per alert change, during ingest
 * and ticks, and a json-c tree cost it a malloc per value. The bytes are those
 * the json-c tree serialized with JSON_C_TO_STRING_PLAIN |
 * JSON_C_TO_STRING_NOSLASHESCAPE gave; tests/unit/test_notification.c holds
 * that tree as the reference.
 */
#include <string.h>

#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/json_out.h"
#include "hearth/notification.h"
#include "hearth/state.h"
#include "hearth/units.h"

static void customer_brief(struct json_out *o, const struct cust *c)
{
	static const char *const keys[] = { "name", "owner", "tier" };
	const struct profile_field *f;

	json_out_open(o);
	json_out_key(o, "id");
	json_out_str(o, c->id, c->id_len);
	for (size_t i = 0; i < 3; i++) {
		if (!(f = cust_profile_get(c, keys[i])))
			continue;
		json_out_key(o, keys[i]);
		switch (f->kind) {
		case PROFILE_STRING: json_out_str(o, f->str, f->str_len); break;
		case PROFILE_INT: json_out_int64(o, f->v.i); break;
		case PROFILE_DOUBLE: json_out_double(o, f->v.d); break;
		case PROFILE_BOOL: json_out_bool(o, f->v.b); break;
		default: json_out_null(o); break;
		}
	}
	json_out_close(o);
}

static void put_time(struct json_out *o, const char *key, int64_t t)
{
	char buf[TIME_BUF];

	json_out_key(o, key);
	json_out_cstr(o, time_format(t, buf, sizeof(buf)));
}

/* The members and their order: the `alerts` answer's (alert_to_json) less "acked", plus labels. */
void notification_body(const struct alert *a, const struct cust *c, const struct config_rule *rule,
		       enum notify_kind kind, uint64_t seq, int64_t now, struct wbuf *out)
{
	struct json_out o = { .b = out };

	json_out_open(&o);
	json_out_key(&o, "seq");
	json_out_int64(&o, (int64_t)seq);
	notification_body_rest(a, c, rule, kind, now, out);
}

void notification_body_join(uint64_t seq, const void *rest, size_t len, struct wbuf *out)
{
	struct json_out o = { .b = out };

	json_out_open(&o);
	json_out_key(&o, "seq");
	json_out_int64(&o, (int64_t)seq);
	wbuf_put(out, rest, len);
}

void notification_body_rest(const struct alert *a, const struct cust *c, const struct config_rule *rule,
			    enum notify_kind kind, int64_t now, struct wbuf *out)
{
	struct json_out o = { .b = out };
	char buf[TIME_BUF];

	/* the member after seq: its comma and key written here, as json_out_key would after a value */
	wbuf_put(out, ",\"ts\":", 6);
	json_out_cstr(&o, time_format(now, buf, sizeof(buf)));
	json_out_key(&o, "kind");
	json_out_cstr(&o, notify_kind_name(kind));
	json_out_key(&o, "alert");
	json_out_open(&o);
	json_out_key(&o, "rule");
	json_out_cstr(&o, a->rule);
	json_out_key(&o, "customer");
	json_out_str(&o, c->id, c->id_len);
	json_out_key(&o, "severity");
	json_out_cstr(&o, severity_name(rule->severity));
	json_out_key(&o, "state");
	json_out_cstr(&o, alert_state_name(a->state));
	put_time(&o, "since", a->since);
	if (a->state == ALERT_FIRING && a->active_since)
		put_time(&o, "active_since", a->active_since);
	if (a->state == ALERT_RESOLVED)
		put_time(&o, "resolved_at", a->resolved_at);
	json_out_key(&o, "summary");
	json_out_cstr(&o, a->summary);
	if (a->values_at)
		put_time(&o, "values_at", a->values_at);
	if (a->acked_by[0]) {
		json_out_key(&o, "acked_by");
		json_out_cstr(&o, a->acked_by);
	}
	/* as the engine has just evaluated them, serialized with json-c's slash escapes */
	if (a->values_json) {
		json_out_key(&o, "values");
		json_out_raw(&o, a->values_json, strlen(a->values_json));
	}
	json_out_key(&o, "labels");
	json_out_open(&o);
	for (size_t i = 0; i < rule->nlabels; i++) {
		json_out_key(&o, rule->labels[i].key);
		json_out_cstr(&o, rule->labels[i].value);
	}
	json_out_close(&o);
	json_out_close(&o);
	json_out_key(&o, "customer");
	customer_brief(&o, c);
	json_out_close(&o);
}
