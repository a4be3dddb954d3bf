/*
 * Event validation and encoding (PROTOCOL.md §2). The stored record is binary:
 *   u8 version | i64 ts | str8 customer | str8 type | str8 id | str8 ref | attrs JSON
 * An empty id or ref means absent (PROTOCOL.md §1.4 forbids empty ones), an empty tail means
 * no attrs. Attrs stay JSON text: they are read rarely and written once.
 */
#include <json-c/json.h>
#include <string.h>

#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/event.h"
#include "hearth/limits.h"
#include "hearth/units.h"

/*
 * json-c checks only the shape of UTF-8 sequences; this refuses overlong forms,
 * surrogates and code points past U+10FFFF as well (RFC 3629).
 */
int utf8_is_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned c = *p++;
		int more;
		unsigned min, cp;
		if (c < 0x80)
			continue;
		if (c >= 0xc2 && c <= 0xdf) {
			more = 1, min = 0x80, cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2, min = 0x800, cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3, min = 0x10000, cp = c & 0x07;
		} else {
			return 0;
		}
		if (end - p < more)
			return 0;
		for (int i = 0; i < more; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		p += more;
	}
	return 1;
}

size_t utf8_cut(const char *s, size_t len)
{
	size_t i = len;

	/* step back over continuation bytes to the last sequence's lead byte */
	while (i > 0 && ((unsigned char)s[i - 1] & 0xc0) == 0x80 && len - i < 3)
		i--;
	if (i == 0)
		return len;
	unsigned char lead = (unsigned char)s[i - 1];
	size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
	return len - (i - 1) >= need ? len : i - 1;
}

int id_is_valid(const char *s, size_t len)
{
	if (len < 1 || len > HEARTH_ID_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}

int time_from_json(struct json_object *v, int64_t *ms)
{
	if (json_object_is_type(v, json_type_int)) {
		*ms = json_object_get_int64(v);
		/* json-c saturates out-of-range numbers; refuse rather than clamp */
		return *ms == INT64_MAX || *ms == INT64_MIN ? -1 : 0;
	}
	if (json_object_is_type(v, json_type_string))
		return time_parse_rfc3339(json_object_get_string(v),
					  (size_t)json_object_get_string_len(v), ms);
	return -1;
}

static int take_id(struct json_object *v, const char *field, const char **out, size_t *len,
		   struct herr *err)
{
	if (json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return herr_set(err, HERR_BAD_FIELD, "%s: must be a string", field);
	*out = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	if (!utf8_is_valid(*out, *len))
		return herr_set(err, HERR_BAD_JSON, "%s: not valid UTF-8", field);
	if (memchr(*out, 0, *len) || !id_is_valid(*out, *len))
		return herr_set(err, HERR_BAD_FIELD,
				"%s: must be 1 to %d bytes without control characters", field,
				HEARTH_ID_MAX);
	return 0;
}

static int take_attrs(struct json_object *v, struct event *ev, struct herr *err)
{
	int n = 0;

	if (json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_object))
		return herr_set(err, HERR_BAD_FIELD, "attrs: must be an object");
	json_object_object_foreach(v, key, val) {
		size_t klen = strlen(key);
		if (++n > HEARTH_ATTRS_MAX)
			return herr_set(err, HERR_BAD_FIELD, "attrs: more than %d keys",
					HEARTH_ATTRS_MAX);
		if (!utf8_is_valid(key, klen))
			return herr_set(err, HERR_BAD_JSON, "attrs: a key is not valid UTF-8");
		if (!name_is_valid(key, klen))
			return herr_set(err, HERR_BAD_FIELD,
					"attrs: key '%.40s' must match [a-z][a-z0-9_]{0,31}", key);
		switch (json_object_get_type(val)) {
		case json_type_object:
		case json_type_array:
			return herr_set(err, HERR_BAD_FIELD,
					"attrs.%s: must be a string, number, bool or null", key);
		case json_type_string:
			if (!utf8_is_valid(json_object_get_string(val), (size_t)json_object_get_string_len(val)))
				return herr_set(err, HERR_BAD_JSON, "attrs.%s: not valid UTF-8", key);
			break;
		case json_type_double: {
			double d = json_object_get_double(val);
			if (d != d || d - d != 0)
				return herr_set(err, HERR_BAD_FIELD, "attrs.%s: not a finite number", key);
			break;
		}
		default:
			break;
		}
	}
	if (n == 0)
		return 0;
	ev->attrs = v;
	ev->attrs_json = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!ev->attrs_json)
		return herr_set(err, HERR_NOMEM, "attrs: out of memory");
	ev->attrs_len = strlen(ev->attrs_json);
	return 0;
}

size_t event_encoded_size(const struct event *ev)
{
	return 1 + 8 + 1 + ev->customer_len + 1 + ev->type_len + 1 + (ev->id ? ev->id_len : 0) + 1 +
	       (ev->ref ? ev->ref_len : 0) + (ev->attrs_json ? ev->attrs_len : 0);
}

int event_from_json(struct json_object *obj, int64_t now, int64_t max_future,
		    struct event *ev, struct herr *err)
{
	struct json_object *customer = NULL, *ts = NULL, *type = NULL;

	memset(ev, 0, sizeof(*ev));
	if (!json_object_is_type(obj, json_type_object))
		return herr_set(err, HERR_BAD_JSON, "an event must be a JSON object");
	json_object_object_foreach(obj, key, val) {
		if (strcmp(key, "customer") == 0)
			customer = val;
		else if (strcmp(key, "ts") == 0)
			ts = val;
		else if (strcmp(key, "type") == 0)
			type = val;
		else if (strcmp(key, "id") == 0) {
			if (take_id(val, "id", &ev->id, &ev->id_len, err) < 0)
				return -1;
		} else if (strcmp(key, "ref") == 0) {
			if (take_id(val, "ref", &ev->ref, &ev->ref_len, err) < 0)
				return -1;
		} else if (strcmp(key, "attrs") == 0) {
			if (take_attrs(val, ev, err) < 0)
				return -1;
		} else {
			return herr_set(err, HERR_UNKNOWN_FIELD, "unknown field '%.60s'", key);
		}
	}
	if (!customer || json_object_is_type(customer, json_type_null))
		return herr_set(err, HERR_BAD_FIELD, "customer: required");
	if (take_id(customer, "customer", &ev->customer, &ev->customer_len, err) < 0)
		return -1;
	if (!type || !json_object_is_type(type, json_type_string))
		return herr_set(err, HERR_BAD_FIELD, "type: required, a string");
	ev->type = json_object_get_string(type);
	ev->type_len = (size_t)json_object_get_string_len(type);
	if (!name_is_valid(ev->type, ev->type_len))
		return herr_set(err, HERR_BAD_FIELD, "type: must match [a-z][a-z0-9_]{0,31}");
	if (!ts)
		return herr_set(err, HERR_BAD_FIELD, "ts: required");
	if (time_from_json(ts, &ev->ts) < 0)
		return herr_set(err, HERR_BAD_FIELD,
				"ts: must be RFC 3339 text or integer unix milliseconds");
	if (ev->ts > now + max_future)
		return herr_set(err, HERR_TS_IN_FUTURE,
				"ts: more than ingest.max_future ahead of the daemon's clock");
	if (event_encoded_size(ev) > HEARTH_EVENT_MAX)
		return herr_set(err, HERR_TOO_LARGE, "the event is larger than %d bytes encoded",
				HEARTH_EVENT_MAX);
	return 0;
}

int event_encode(const struct event *ev, struct wbuf *out, struct herr *err)
{
	size_t start = out->len;

	wbuf_u8(out, EVENT_RECORD_VERSION);
	wbuf_i64(out, ev->ts);
	wbuf_str8(out, ev->customer, ev->customer_len);
	wbuf_str8(out, ev->type, ev->type_len);
	wbuf_str8(out, ev->id, ev->id ? ev->id_len : 0);
	wbuf_str8(out, ev->ref, ev->ref ? ev->ref_len : 0);
	if (ev->attrs_json)
		wbuf_put(out, ev->attrs_json, ev->attrs_len);
	if (out->failed)
		return herr_set(err, HERR_NOMEM, "out of memory encoding an event");
	if (out->len - start > HEARTH_EVENT_MAX) {
		out->len = start;
		return herr_set(err, HERR_TOO_LARGE, "attrs: the event is larger than %d bytes",
				HEARTH_EVENT_MAX);
	}
	return 0;
}

int event_decode(const void *data, size_t len, struct event *ev)
{
	struct rbuf r;

	memset(ev, 0, sizeof(*ev));
	rbuf_init(&r, data, len);
	if (rbuf_u8(&r) != EVENT_RECORD_VERSION)
		return -1;
	ev->ts = rbuf_i64(&r);
	ev->customer = rbuf_str8(&r, &ev->customer_len);
	ev->type = rbuf_str8(&r, &ev->type_len);
	ev->id = rbuf_str8(&r, &ev->id_len);
	ev->ref = rbuf_str8(&r, &ev->ref_len);
	if (r.failed)
		return -1;
	if (ev->id_len == 0)
		ev->id = NULL;
	if (ev->ref_len == 0)
		ev->ref = NULL;
	if (r.p < r.end) {
		ev->attrs_json = (const char *)r.p;
		ev->attrs_len = (size_t)(r.end - r.p);
	}
	return 0;
}

static void add_string(struct json_object *o, const char *key, const char *s, size_t len)
{
	json_object_object_add(o, key, json_object_new_string_len(s, (int)len));
}

struct json_object *event_to_json(const struct event *ev)
{
	struct json_object *o = json_object_new_object();
	char buf[TIME_BUF];

	if (!o)
		return NULL;
	json_object_object_add(o, "seq", json_object_new_int64((int64_t)ev->seq));
	if (ev->id)
		add_string(o, "id", ev->id, ev->id_len);
	add_string(o, "customer", ev->customer, ev->customer_len);
	json_object_object_add(o, "ts", json_object_new_string(time_format(ev->ts, buf, sizeof(buf))));
	add_string(o, "type", ev->type, ev->type_len);
	if (ev->ref)
		add_string(o, "ref", ev->ref, ev->ref_len);
	if (ev->attrs_json) {
		struct json_tokener *tok = json_tokener_new();
		struct json_object *attrs = tok ? json_tokener_parse_ex(tok, ev->attrs_json,
									(int)ev->attrs_len) : NULL;
		if (attrs)
			json_object_object_add(o, "attrs", attrs);
		json_tokener_free(tok);
	}
	return o;
}
