/*
 * Alert records and the lifecycle step. The step is a pure function of the
 * previous state, the condition and the clock, which is what lets the tick,
 * ingest and a full re-evaluation share it and what the unit tests pin down.
 *
 * Record: u8 version | u8 state | i64 since | i64 last_notified | i64 resolved_at |
 *         u8 acked | str8 acked_by | u16 len summary | u32 len values JSON |
 *         i64 active_since | i64 values_at (version 2)
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert.h"
#include "hearth/codec.h"
#include "hearth/units.h"

static const char *const state_names[] = { "inactive", "pending", "firing", "resolved" };

const char *alert_state_name(enum alert_state s)
{
	return (unsigned)s < 4 ? state_names[s] : "?";
}

int alert_state_parse(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

const char *notify_kind_name(enum notify_kind k)
{
	switch (k) {
	case NOTIFY_FIRING: return "firing";
	case NOTIFY_REPEAT: return "repeat";
	case NOTIFY_RESOLVED: return "resolved";
	default: return "none";
	}
}

enum notify_kind alert_step(struct alert *a, int holds, int64_t now, int64_t for_ms,
			    int64_t repeat_ms, int64_t *wake)
{
	*wake = INT64_MAX;
	if (!holds) {
		if (a->state == ALERT_PENDING) {
			a->state = ALERT_INACTIVE;
			return NOTIFY_NONE;
		}
		if (a->state != ALERT_FIRING)
			return NOTIFY_NONE;
		a->state = ALERT_RESOLVED;
		a->resolved_at = now;
		a->acked = 0;
		a->acked_by[0] = '\0';
		return NOTIFY_RESOLVED;
	}
	if (a->state == ALERT_INACTIVE || a->state == ALERT_RESOLVED) {
		a->state = ALERT_PENDING;
		a->since = now;
		a->acked = 0;
		a->acked_by[0] = '\0';
	}
	if (a->state == ALERT_PENDING) {
		if (now - a->since < for_ms) {
			*wake = a->since + for_ms;
			return NOTIFY_NONE;
		}
		a->state = ALERT_FIRING;
		a->since = now;
		a->last_notified = now;
		if (repeat_ms > 0)
			*wake = now + repeat_ms;
		return NOTIFY_FIRING;
	}
	/* firing */
	if (repeat_ms <= 0 || a->acked)
		return NOTIFY_NONE;
	if (now - a->last_notified >= repeat_ms) {
		a->last_notified = now;
		*wake = now + repeat_ms;
		return NOTIFY_REPEAT;
	}
	*wake = a->last_notified + repeat_ms;
	return NOTIFY_NONE;
}

/*
 * Record version 3: the times after `since` as varints from it (most equal it,
 * or are 0 for "not yet"), lengths as varints: ~30 bytes less per alert state.
 */
static void put_time_from(struct wbuf *out, int64_t t, int64_t since)
{
	wbuf_varint(out, t == 0 ? 0 : zigzag64((uint64_t)t - (uint64_t)since) + 1);
}

static int64_t get_time_from(struct rbuf *r, int64_t since)
{
	uint64_t v = rbuf_varint(r);

	return v == 0 ? 0 : (int64_t)((uint64_t)since + unzigzag64(v - 1));
}

int alert_encode(const struct alert *a, struct wbuf *out)
{
	size_t slen = strlen(a->summary), vlen = a->values_json ? strlen(a->values_json) : 0;

	wbuf_u8(out, ALERT_RECORD_VERSION);
	wbuf_u8(out, (uint8_t)a->state);
	wbuf_i64(out, a->since);
	put_time_from(out, a->last_notified, a->since);
	put_time_from(out, a->resolved_at, a->since);
	wbuf_u8(out, (uint8_t)a->acked);
	wbuf_str8(out, a->acked_by, strlen(a->acked_by));
	wbuf_varint(out, slen);
	wbuf_put(out, a->summary, slen);
	wbuf_varint(out, vlen);
	wbuf_put(out, a->values_json, vlen);
	put_time_from(out, a->active_since, a->since);
	put_time_from(out, a->values_at, a->since);
	return out->failed ? -1 : 0;
}

static void copy_bounded(char *dst, size_t size, const char *src, size_t len)
{
	if (len >= size)
		len = size - 1;
	memcpy(dst, src ? src : "", src ? len : 0);
	dst[src ? len : 0] = '\0';
}

int alert_decode(const void *data, size_t len, struct alert *a)
{
	struct rbuf r;
	uint64_t n;
	size_t slen;
	const char *s;

	rbuf_init(&r, data, len);
	uint8_t version = rbuf_u8(&r);
	if (version < 1 || version > ALERT_RECORD_VERSION)
		return -1;
	int v3 = version >= 3;
	a->state = (enum alert_state)rbuf_u8(&r);
	a->since = rbuf_i64(&r);
	a->last_notified = v3 ? get_time_from(&r, a->since) : rbuf_i64(&r);
	a->resolved_at = v3 ? get_time_from(&r, a->since) : rbuf_i64(&r);
	a->acked = rbuf_u8(&r);
	s = rbuf_str8(&r, &slen);
	copy_bounded(a->acked_by, sizeof(a->acked_by), s, slen);
	n = v3 ? rbuf_varint(&r) : rbuf_u16(&r);
	s = rbuf_bytes(&r, n <= len ? (size_t)n : len + 1);
	copy_bounded(a->summary, sizeof(a->summary), s, (size_t)n);
	n = v3 ? rbuf_varint(&r) : rbuf_u32(&r);
	s = rbuf_bytes(&r, n <= len ? (size_t)n : len + 1);
	free(a->values_json);
	a->values_json = s ? strndup(s, (size_t)n) : NULL;
	if (version == 1)
		a->active_since = a->values_at = 0;
	else {
		a->active_since = v3 ? get_time_from(&r, a->since) : rbuf_i64(&r);
		a->values_at = v3 ? get_time_from(&r, a->since) : rbuf_i64(&r);
	}
	return r.failed || a->state > ALERT_RESOLVED ? -1 : 0;
}

void alert_clear(struct alert *a)
{
	free(a->values_json);
	memset(a, 0, sizeof(*a));
}

void alert_reset(struct alert *a)
{
	/* field by field: this runs for every rule of every evaluation, the texts are long */
	free(a->values_json);
	a->values_json = NULL;
	a->state = ALERT_INACTIVE;
	a->since = a->last_notified = a->resolved_at = a->active_since = a->values_at = 0;
	a->acked = 0;
	a->acked_by[0] = a->summary[0] = '\0';
}

struct json_object *alert_to_json(const struct alert *a, const char *customer, size_t clen,
				  const char *severity)
{
	struct json_object *o = json_object_new_object();
	char buf[TIME_BUF];

	json_object_object_add(o, "rule", json_object_new_string(a->rule));
	json_object_object_add(o, "customer", json_object_new_string_len(customer, (int)clen));
	json_object_object_add(o, "severity", json_object_new_string(severity));
	json_object_object_add(o, "state", json_object_new_string(alert_state_name(a->state)));
	json_object_object_add(o, "since", json_object_new_string(time_format(a->since, buf, sizeof(buf))));
	if (a->state == ALERT_FIRING && a->active_since)
		json_object_object_add(o, "active_since",
				       json_object_new_string(time_format(a->active_since, buf, sizeof(buf))));
	if (a->state == ALERT_RESOLVED)
		json_object_object_add(o, "resolved_at",
				       json_object_new_string(time_format(a->resolved_at, buf, sizeof(buf))));
	json_object_object_add(o, "summary", json_object_new_string(a->summary));
	if (a->values_at)
		json_object_object_add(o, "values_at",
				       json_object_new_string(time_format(a->values_at, buf, sizeof(buf))));
	json_object_object_add(o, "acked", json_object_new_boolean(a->acked));
	if (a->acked_by[0])
		json_object_object_add(o, "acked_by", json_object_new_string(a->acked_by));
	if (a->values_json)
		json_object_object_add(o, "values", json_tokener_parse(a->values_json));
	return o;
}
