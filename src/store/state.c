/*
 * Per-customer derived state (see include/hearth/state.h). Every field is
 * maintained so that the order in which events arrive does not matter:
 * first/last are min/max, recent times are kept sorted, and each profile key
 * remembers the time of the event that set it, so a late backfilled profile
 * event never overwrites a newer value.
 *
 * Record: u8 version | i64 first | i64 last | u64 events | u64 applied_seq | i64 deadline |
 *   u16 ntypes {str8 type, varint count, u8 n, i64 oldest kept, varint gaps[n-1]} |
 *   u16 ncases {str8 case, str8 ref, i64 opened, i64 due, i64 closed} |
 *   u16 nprofile {str8 key, i64 ts, u8 kind, value}
 * where value is i64 (int), f64 bits (double), u8 (bool), u32 len + bytes
 * (string) or nothing (absent). Version 2 records kept the profile as two JSON
 * texts (values, key times); they are still read. The profile is binary so
 * that loading a customer (every tick and re-evaluation does) parses no JSON.
 */
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/event.h"
#include "hearth/json.h"
#include "hearth/state.h"
#include "hearth/units.h"
#include "type_names.h"

struct cust *cust_new(const char *id, size_t len)
{
	struct cust *c = calloc(1, sizeof(*c));

	if (!c || len > HEARTH_ID_MAX)
		goto fail;
	memcpy(c->id, id, len);
	c->id_len = len;
	c->first_seen = c->last_seen = TIME_NONE;
	c->deadline = INT64_MAX;
	return c;
fail:
	cust_free(c);
	return NULL;
}

void cust_free(struct cust *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->nprofile; i++)
		free(c->profile[i].str);
	free(c->profile);
	free(c->types);
	free(c->cases);
	free(c->quiet_until);
	free(c->heads);
	free(c);
}

/*
 * Record version 4 keeps times as varints from the customer's first_seen and
 * counts as varints: most of a record's fixed-width fields were zeros. Times
 * are of validated events (years 0000-9999), so a difference never nears 2^63;
 * 0 and 1 stand for the two sentinels.
 */
static int64_t time_base(const struct cust *c)
{
	return c->first_seen == TIME_NONE ? 0 : c->first_seen;
}

static void put_time(struct wbuf *out, int64_t t, int64_t base)
{
	if (t == TIME_NONE)
		wbuf_varint(out, 0);
	else if (t == INT64_MAX)
		wbuf_varint(out, 1);
	else
		wbuf_varint(out, zigzag64((uint64_t)t - (uint64_t)base) + 2);
}

static void put_profile(struct wbuf *out, const struct cust *c, int64_t base)
{
	wbuf_varint(out, c->nprofile);
	for (size_t i = 0; i < c->nprofile; i++) {
		const struct profile_field *f = &c->profile[i];
		wbuf_str8(out, f->key, f->key_len);
		put_time(out, f->ts, base);
		wbuf_u8(out, f->kind);
		switch (f->kind) {
		case PROFILE_STRING:
			wbuf_varint(out, f->str_len);
			wbuf_put(out, f->str, f->str_len);
			break;
		case PROFILE_INT:
			wbuf_varint(out, zigzag64((uint64_t)f->v.i));
			break;
		case PROFILE_DOUBLE: {
			uint64_t bits;
			memcpy(&bits, &f->v.d, sizeof(bits));
			wbuf_u64(out, bits);
			break;
		}
		case PROFILE_BOOL:
			wbuf_u8(out, (uint8_t)f->v.b);
			break;
		default:
			break;
		}
	}
}

int cust_encode(const struct cust *c, struct type_names *types, struct wbuf *out)
{
	int64_t base = time_base(c);

	wbuf_u8(out, STATE_RECORD_VERSION);
	wbuf_i64(out, c->first_seen);
	put_time(out, c->last_seen, base);
	wbuf_varint(out, c->events);
	wbuf_varint(out, c->applied_seq);
	put_time(out, c->deadline, base);
	wbuf_varint(out, c->ntypes);
	for (size_t i = 0; i < c->ntypes; i++) {
		const struct type_stat *t = &c->types[i];
		type_names_put_ref(types, out, t->type, t->type_len);
		wbuf_varint(out, t->count);
		wbuf_u8(out, t->nrecent);
		/* the newest times, ascending: the first as a time, then the gaps (last = the newest) */
		for (int j = 0; j < t->nrecent; j++) {
			if (j == 0)
				put_time(out, t->recent[0], base);
			else
				wbuf_varint(out, (uint64_t)(t->recent[j] - t->recent[j - 1]));
		}
	}
	wbuf_varint(out, c->ncases);
	for (size_t i = 0; i < c->ncases; i++) {
		const struct open_case *oc = &c->cases[i];
		type_names_put_ref(types, out, oc->name, oc->name_len);
		wbuf_str8(out, oc->ref, oc->ref_len);
		put_time(out, oc->opened, base);
		put_time(out, oc->due, base);
		put_time(out, oc->closed, base);
	}
	put_profile(out, c, base);
	return out->failed ? -1 : 0;
}

/* The length copied (at most size - 1). */
static uint8_t copy_str(char *dst, size_t size, const char *src, size_t len)
{
	_Static_assert(HEARTH_NAME_MAX < 256 && HEARTH_ID_MAX < 256, "names and ids have a one-byte length");
	if (len >= size)
		len = size - 1;
	memcpy(dst, src, len);
	dst[len] = '\0';
	return (uint8_t)len;
}

/* An empty text is an empty profile, kept as NULL: no json-c table to build. */
static int read_json(struct rbuf *r, struct json_object **out)
{
	uint32_t len = rbuf_u32(r);
	const char *text = rbuf_bytes(r, len);

	*out = NULL;
	if (!text)
		return -1;
	if (len == 0 || (len == 2 && text[0] == '{' && text[1] == '}'))
		return 0;
	*out = json_parse_once(text, len); /* records are decoded on several threads */
	if (*out && !json_object_is_type(*out, json_type_object)) {
		json_object_put(*out);
		*out = NULL;
	}
	return *out ? 0 : -1;
}

/* The key's slot, added (absent, no time) when create is set; NULL if none or out of memory. */
static struct profile_field *profile_slot(struct cust *c, const char *key, size_t klen, int create)
{
	for (size_t i = 0; i < c->nprofile; i++)
		if (c->profile[i].key_len == klen && memcmp(c->profile[i].key, key, klen) == 0)
			return &c->profile[i];
	if (!create || klen > HEARTH_NAME_MAX)
		return NULL;
	if (array_reserve((void **)&c->profile, &c->profile_cap, c->nprofile + 1, sizeof(*c->profile)) < 0)
		return NULL;
	struct profile_field *f = &c->profile[c->nprofile++];
	memset(f, 0, sizeof(*f));
	memcpy(f->key, key, klen);
	f->key_len = (uint8_t)klen;
	f->ts = TIME_NONE;
	return f;
}

static void field_clear(struct profile_field *f)
{
	free(f->str);
	f->str = NULL;
	f->str_len = 0;
	f->kind = PROFILE_ABSENT;
}

/* Sets the value from an attrs value: null makes the key absent. */
static int field_set_json(struct profile_field *f, struct json_object *val)
{
	field_clear(f);
	switch (json_object_get_type(val)) {
	case json_type_string:
		f->str_len = (size_t)json_object_get_string_len(val);
		if (!(f->str = malloc(f->str_len + 1)))
			return -1;
		memcpy(f->str, json_object_get_string(val), f->str_len + 1);
		f->kind = PROFILE_STRING;
		break;
	case json_type_int:
		f->v.i = json_object_get_int64(val);
		f->kind = PROFILE_INT;
		break;
	case json_type_double:
		f->v.d = json_object_get_double(val);
		f->kind = PROFILE_DOUBLE;
		break;
	case json_type_boolean:
		f->v.b = json_object_get_boolean(val);
		f->kind = PROFILE_BOOL;
		break;
	default:
		break;
	}
	return 0;
}

const struct profile_field *cust_profile_get(const struct cust *c, const char *key)
{
	const struct profile_field *f = profile_slot((struct cust *)c, key, strlen(key), 0);
	return f && f->kind != PROFILE_ABSENT ? f : NULL;
}

struct json_object *profile_field_json(const struct profile_field *f)
{
	switch (f->kind) {
	case PROFILE_STRING:
		return json_object_new_string_len(f->str, (int)f->str_len);
	case PROFILE_INT:
		return json_object_new_int64(f->v.i);
	case PROFILE_DOUBLE:
		return json_object_new_double(f->v.d);
	case PROFILE_BOOL:
		return json_object_new_boolean(f->v.b);
	default:
		return NULL;
	}
}

const char *cust_profile_string(const struct cust *c, const char *key)
{
	const struct profile_field *f = cust_profile_get(c, key);

	return f && f->kind == PROFILE_STRING ? f->str : NULL;
}

struct json_object *cust_profile_json(const struct cust *c)
{
	struct json_object *o = json_object_new_object();

	for (size_t i = 0; o && i < c->nprofile; i++)
		if (c->profile[i].kind != PROFILE_ABSENT)
			json_object_object_add(o, c->profile[i].key, profile_field_json(&c->profile[i]));
	return o;
}

/* The fields of a record, by version: 3 wrote them fixed-width, 4 as varints. */
struct rec_reader {
	struct rbuf r;
	int version;
	int64_t base;
	const struct type_names *types;
};

/* A type's or case's name: a number from version 5 on, text before. */
static const char *get_name(struct rec_reader *rr, size_t *len)
{
	return rr->version < 5 ? rbuf_str8(&rr->r, len) : type_names_get_ref(rr->types, &rr->r, len);
}

static int64_t get_time(struct rec_reader *rr)
{
	if (rr->version < 4)
		return rbuf_i64(&rr->r);
	uint64_t v = rbuf_varint(&rr->r);
	if (v == 0)
		return TIME_NONE;
	if (v == 1)
		return INT64_MAX;
	return (int64_t)((uint64_t)rr->base + unzigzag64(v - 2));
}

static uint64_t get_u64(struct rec_reader *rr)
{
	return rr->version < 4 ? rbuf_u64(&rr->r) : rbuf_varint(&rr->r);
}

static size_t get_count(struct rec_reader *rr)
{
	uint64_t n = rr->version < 4 ? rbuf_u16(&rr->r) : rbuf_varint(&rr->r);

	if (n > UINT16_MAX)
		rr->r.failed = 1;
	return rr->r.failed ? 0 : (size_t)n;
}

static int read_profile(struct rec_reader *rr, struct cust *c)
{
	struct rbuf *r = &rr->r;
	size_t n = get_count(rr), klen;

	if (array_reserve((void **)&c->profile, &c->profile_cap, n, sizeof(*c->profile)) < 0)
		return -1;
	for (size_t i = 0; i < n && !r->failed; i++) {
		struct profile_field *f = &c->profile[c->nprofile++];
		memset(f, 0, sizeof(*f));
		const char *key = rbuf_str8(r, &klen);
		if (!key || klen > HEARTH_NAME_MAX)
			return -1;
		memcpy(f->key, key, klen);
		f->key_len = (uint8_t)klen;
		f->ts = get_time(rr);
		switch (rbuf_u8(r)) {
		case PROFILE_STRING: {
			uint64_t len = rr->version < 4 ? rbuf_u32(r) : rbuf_varint(r);
			const char *text = len <= UINT32_MAX ? rbuf_bytes(r, (size_t)len) : NULL;
			if (!text || !(f->str = malloc((size_t)len + 1)))
				return -1;
			memcpy(f->str, text, len);
			f->str[len] = '\0';
			f->str_len = len;
			f->kind = PROFILE_STRING;
			break;
		}
		case PROFILE_INT:
			f->v.i = rr->version < 4 ? rbuf_i64(r) : (int64_t)unzigzag64(rbuf_varint(r));
			f->kind = PROFILE_INT;
			break;
		case PROFILE_DOUBLE: {
			uint64_t bits = rbuf_u64(r);
			memcpy(&f->v.d, &bits, sizeof(bits));
			f->kind = PROFILE_DOUBLE;
			break;
		}
		case PROFILE_BOOL:
			f->v.b = rbuf_u8(r) != 0;
			f->kind = PROFILE_BOOL;
			break;
		case PROFILE_ABSENT:
			break;
		default:
			return -1;
		}
	}
	return r->failed ? -1 : 0;
}

/* Version 2: the values and the key times as two JSON objects. */
static int read_profile_v2(struct rbuf *r, struct cust *c)
{
	struct json_object *values = NULL, *times = NULL;
	int rc = -1;

	if (read_json(r, &values) < 0 || read_json(r, &times) < 0)
		goto out;
	json_object_object_foreach(times, key, ts) {
		struct profile_field *f = profile_slot(c, key, strlen(key), 1);
		if (!f)
			goto out;
		f->ts = json_object_get_int64(ts);
	}
	json_object_object_foreach(values, vkey, val) {
		struct profile_field *f = profile_slot(c, vkey, strlen(vkey), 1);
		if (!f || field_set_json(f, val) < 0)
			goto out;
	}
	rc = 0;
out:
	json_object_put(values);
	json_object_put(times);
	return rc;
}

/* c as cust_new makes it, keeping its arrays' room (and its memo, which is not stored). */
static int cust_empty(struct cust *c, const char *id, size_t len)
{
	if (len > HEARTH_ID_MAX)
		return -1;
	for (size_t i = 0; i < c->nprofile; i++)
		free(c->profile[i].str);
	c->nprofile = c->ntypes = c->ncases = 0;
	memcpy(c->id, id, len);
	c->id[len] = '\0';
	c->id_len = len;
	c->first_seen = c->last_seen = TIME_NONE;
	c->events = c->applied_seq = 0;
	c->deadline = INT64_MAX;
	return 0;
}

int cust_decode_into(struct cust *c, const char *id, size_t id_len, const void *data, size_t len,
		     const struct type_names *types)
{
	struct rec_reader rr;
	struct rbuf *r = &rr.r;
	size_t slen, n;
	const char *s;

	if (cust_empty(c, id, id_len) < 0)
		return -1;
	rbuf_init(r, data, len);
	rr.types = types;
	rr.version = rbuf_u8(r);
	if (rr.version < 2 || rr.version > STATE_RECORD_VERSION)
		goto fail;
	c->first_seen = rbuf_i64(r);
	rr.base = time_base(c);
	c->last_seen = get_time(&rr);
	c->events = get_u64(&rr);
	c->applied_seq = get_u64(&rr);
	c->deadline = get_time(&rr);
	n = get_count(&rr);
	if (array_reserve((void **)&c->types, &c->types_cap, n, sizeof(*c->types)) < 0)
		goto fail;
	for (; c->ntypes < n && !r->failed; c->ntypes++) {
		struct type_stat *t = &c->types[c->ntypes];
		memset(t, 0, sizeof(*t));
		s = get_name(&rr, &slen);
		t->type_len = copy_str(t->type, sizeof(t->type), s ? s : "", s ? slen : 0);
		t->hash = type_name_hash(t->type, t->type_len);
		t->count = rbuf_varint(r);
		t->nrecent = rbuf_u8(r);
		if (t->nrecent > STATE_RECENT || t->nrecent == 0)
			goto fail;
		for (int j = 0; j < t->nrecent; j++)
			t->recent[j] = j == 0 ? get_time(&rr) : t->recent[j - 1] + (int64_t)rbuf_varint(r);
		t->last = t->recent[t->nrecent - 1];
	}
	n = get_count(&rr);
	if (array_reserve((void **)&c->cases, &c->cases_cap, n, sizeof(*c->cases)) < 0)
		goto fail;
	for (; c->ncases < n && !r->failed; c->ncases++) {
		struct open_case *oc = &c->cases[c->ncases];
		memset(oc, 0, sizeof(*oc));
		s = get_name(&rr, &slen);
		oc->name_len = copy_str(oc->name, sizeof(oc->name), s ? s : "", s ? slen : 0);
		s = rbuf_str8(r, &slen);
		oc->ref_len = copy_str(oc->ref, sizeof(oc->ref), s ? s : "", s ? slen : 0);
		oc->opened = get_time(&rr);
		oc->due = get_time(&rr);
		oc->closed = get_time(&rr);
	}
	if ((rr.version == 2 ? read_profile_v2(r, c) : read_profile(&rr, c)) < 0 || r->failed)
		goto fail;
	return 0;
fail:
	cust_empty(c, id, id_len);
	return -1;
}

struct cust *cust_decode(const char *id, size_t id_len, const void *data, size_t len,
			 const struct type_names *types)
{
	struct cust *c = cust_new(id, id_len);

	if (c && cust_decode_into(c, id, id_len, data, len, types) < 0) {
		cust_free(c);
		return NULL;
	}
	return c;
}

/* FNV-1a, 32 bits: a dozen types per customer rarely share one. */
uint32_t type_name_hash(const char *type, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)type[i]) * 16777619u;
	return h;
}

const struct type_stat *cust_type_hashed(const struct cust *c, const char *type, uint32_t hash)
{
	for (size_t i = 0; i < c->ntypes; i++)
		if (c->types[i].hash == hash && strcmp(c->types[i].type, type) == 0)
			return &c->types[i];
	return NULL;
}

const struct type_stat *cust_type(const struct cust *c, const char *type)
{
	return cust_type_hashed(c, type, type_name_hash(type, strlen(type)));
}

static struct type_stat *type_stat_get(struct cust *c, const char *type, size_t len)
{
	uint32_t hash = type_name_hash(type, len);

	for (size_t i = 0; i < c->ntypes; i++)
		if (c->types[i].hash == hash && c->types[i].type_len == len &&
		    memcmp(c->types[i].type, type, len) == 0)
			return &c->types[i];
	if (array_reserve((void **)&c->types, &c->types_cap, c->ntypes + 1, sizeof(*c->types)) < 0)
		return NULL;
	struct type_stat *t = &c->types[c->ntypes++];
	memset(t, 0, sizeof(*t));
	t->type_len = copy_str(t->type, sizeof(t->type), type, len);
	t->hash = type_name_hash(t->type, t->type_len);
	t->last = TIME_NONE;
	return t;
}

/* Keeps the STATE_RECENT newest times, ascending, whatever order they come in. */
static void recent_insert(struct type_stat *t, int64_t ts)
{
	int i;

	if (t->nrecent == STATE_RECENT) {
		if (ts <= t->recent[0])
			return;
		memmove(&t->recent[0], &t->recent[1], (STATE_RECENT - 1) * sizeof(int64_t));
		t->nrecent--;
	}
	for (i = t->nrecent; i > 0 && t->recent[i - 1] > ts; i--)
		t->recent[i] = t->recent[i - 1];
	t->recent[i] = ts;
	t->nrecent++;
}

static int apply_profile(struct cust *c, struct json_object *attrs, int64_t ts)
{
	json_object_object_foreach(attrs, key, val) {
		struct profile_field *f = profile_slot(c, key, strlen(key), 1);
		if (!f)
			return -1;
		if (f->ts != TIME_NONE && f->ts > ts)
			continue; /* a newer event set it */
		f->ts = ts;
		if (field_set_json(f, val) < 0)
			return -1;
	}
	return 0;
}

static int64_t due_time(struct json_object *attrs, const char *due_attr)
{
	struct json_object *v;
	int64_t ms;

	if (!attrs || !due_attr || !json_object_object_get_ex(attrs, due_attr, &v))
		return TIME_NONE;
	return time_from_json(v, &ms) == 0 ? ms : TIME_NONE;
}

static int same_case(const struct open_case *oc, const struct config_case *cc, const struct event *ev)
{
	return strcmp(oc->name, cc->name) == 0 && ev->ref && oc->ref_len == ev->ref_len &&
	       memcmp(oc->ref, ev->ref, ev->ref_len) == 0;
}

static void drop_case(struct cust *c, size_t i)
{
	memmove(&c->cases[i], &c->cases[i + 1], (c->ncases - i - 1) * sizeof(*c->cases));
	c->ncases--;
}

static struct open_case *add_case(struct cust *c, const struct config_case *cc, const struct event *ev)
{
	if (array_reserve((void **)&c->cases, &c->cases_cap, c->ncases + 1, sizeof(*c->cases)) < 0)
		return NULL;
	struct open_case *oc = &c->cases[c->ncases++];
	memset(oc, 0, sizeof(*oc));
	oc->name_len = copy_str(oc->name, sizeof(oc->name), cc->name, strlen(cc->name));
	if (ev->ref)
		oc->ref_len = copy_str(oc->ref, sizeof(oc->ref), ev->ref, ev->ref_len);
	oc->opened = oc->due = oc->closed = TIME_NONE;
	return oc;
}

static int open_case(struct cust *c, const struct config_case *cc, const struct event *ev,
		     struct json_object *attrs)
{
	/* its close may have arrived first (events come in any order) */
	for (size_t i = 0; i < c->ncases; i++)
		if (c->cases[i].closed != TIME_NONE && same_case(&c->cases[i], cc, ev) &&
		    c->cases[i].closed >= ev->ts) {
			drop_case(c, i);
			return 0;
		}
	struct open_case *oc = add_case(c, cc, ev);
	if (!oc)
		return -1;
	oc->opened = ev->ts;
	oc->due = due_time(attrs, cc->due);
	return 0;
}

/* A close with a ref closes that case; without one, the oldest open case. */
static int close_case(struct cust *c, const struct config_case *cc, const struct event *ev)
{
	size_t pick = c->ncases, early = 0;

	for (size_t i = 0; i < c->ncases; i++) {
		const struct open_case *oc = &c->cases[i];
		if (oc->closed != TIME_NONE) {
			early += strcmp(oc->name, cc->name) == 0;
			continue;
		}
		if (strcmp(oc->name, cc->name) != 0)
			continue;
		if (ev->ref) {
			if (same_case(oc, cc, ev)) {
				pick = i;
				break;
			}
		} else if (pick == c->ncases || oc->opened < c->cases[pick].opened) {
			pick = i;
		}
	}
	if (pick < c->ncases) {
		drop_case(c, pick);
		return 0;
	}
	if (!ev->ref)
		return 0;
	/* remember it for its open, but only a few: a stray close must not grow the record */
	if (early >= STATE_EARLY_CLOSES)
		for (size_t i = 0; i < c->ncases; i++)
			if (c->cases[i].closed != TIME_NONE && strcmp(c->cases[i].name, cc->name) == 0) {
				drop_case(c, i);
				break;
			}
	struct open_case *oc = add_case(c, cc, ev);
	if (!oc)
		return -1;
	oc->closed = ev->ts;
	return 0;
}

static int type_is(const struct event *ev, const char *name)
{
	return name && strlen(name) == ev->type_len && memcmp(ev->type, name, ev->type_len) == 0;
}

/* Only profile events and the opens of cases with a due date read their attrs. */
static int reads_attrs(const struct event *ev, const struct config *cfg, int skip_cases)
{
	if (type_is(ev, "profile"))
		return 1;
	for (size_t i = 0; !skip_cases && cfg && i < cfg->ncases; i++)
		if (cfg->cases[i].due && type_is(ev, cfg->cases[i].open))
			return 1;
	return 0;
}

/*
 * Events from ingest and the log carry attrs as text. The tokener is not kept:
 * the writer and the control thread (what-if answers) both fold, and only
 * profile events and opens of cases with a due date get here (reads_attrs).
 */
static struct json_object *event_attrs(const struct event *ev, struct json_object **parsed)
{
	*parsed = NULL;
	if (!ev->attrs && ev->attrs_json) {
		*parsed = json_parse_once(ev->attrs_json, ev->attrs_len);
		return *parsed;
	}
	return ev->attrs;
}

static int apply_cases(struct cust *c, const struct event *ev, const struct config *cfg,
		       struct json_object *attrs)
{
	for (size_t i = 0; cfg && i < cfg->ncases; i++) {
		const struct config_case *cc = &cfg->cases[i];
		if (type_is(ev, cc->open) && open_case(c, cc, ev, attrs) < 0)
			return -1;
		if (type_is(ev, cc->close) && close_case(c, cc, ev) < 0)
			return -1;
	}
	return 0;
}

static int is_case_event(const struct event *ev, const struct config *cfg)
{
	for (size_t i = 0; cfg && i < cfg->ncases; i++)
		if (type_is(ev, cfg->cases[i].open) || type_is(ev, cfg->cases[i].close))
			return 1;
	return 0;
}

int cust_case_event_is_late(const struct cust *c, const struct event *ev, const struct config *cfg)
{
	int64_t newest = TIME_NONE;

	/* most events open or close no case: no type lookups for them */
	if (!is_case_event(ev, cfg))
		return 0;
	for (size_t i = 0; i < cfg->ncases; i++) {
		const struct config_case *cc = &cfg->cases[i];
		const struct type_stat *o = cust_type(c, cc->open), *k = cust_type(c, cc->close);
		if (o && o->last > newest)
			newest = o->last;
		if (k && k->last > newest)
			newest = k->last;
	}
	return newest != TIME_NONE && ev->ts < newest;
}

void cust_cases_reset(struct cust *c)
{
	c->changed = CUST_CHANGED_ALL;
	c->ncases = 0;
}

int cust_apply_case_event(struct cust *c, const struct event *ev, const struct config *cfg)
{
	struct json_object *parsed, *attrs = event_attrs(ev, &parsed);
	int rc = apply_cases(c, ev, cfg, attrs);

	json_object_put(parsed);
	return rc;
}

int cust_apply_ex(struct cust *c, const struct event *ev, const struct config *cfg, int skip_cases)
{
	struct json_object *parsed, *attrs;
	struct type_stat *t;
	int rc = -1;

	if (ev->seq && ev->seq <= c->applied_seq)
		return 0; /* already folded in before a crash: replay is idempotent */
	/* the parse is skipped where nothing reads the attrs: most events in a busy ingest */
	if (reads_attrs(ev, cfg, skip_cases)) {
		attrs = event_attrs(ev, &parsed);
	} else {
		attrs = NULL;
		parsed = NULL;
	}
	c->events++;
	if (c->first_seen == TIME_NONE || ev->ts < c->first_seen) {
		c->first_seen = ev->ts;
		c->changed |= CUST_CHANGED_FIRST_SEEN;
	}
	if (c->last_seen == TIME_NONE || ev->ts > c->last_seen)
		c->last_seen = ev->ts;
	if (ev->seq > c->applied_seq)
		c->applied_seq = ev->seq;
	if (!(t = type_stat_get(c, ev->type, ev->type_len)))
		goto out;
	/* a type's bit covers its stats, the profile (type profile) and the cases it opens or closes */
	c->changed |= cust_changed_bit(t->hash);
	if (t->last == TIME_NONE || ev->ts > t->last)
		t->last = ev->ts;
	t->count++;
	recent_insert(t, ev->ts);
	if (type_is(ev, "profile") && attrs && apply_profile(c, attrs, ev->ts) < 0)
		goto out;
	if (!skip_cases && apply_cases(c, ev, cfg, attrs) < 0)
		goto out;
	rc = 0;
out:
	json_object_put(parsed);
	return rc;
}

int cust_apply(struct cust *c, const struct event *ev, const struct config *cfg)
{
	return cust_apply_ex(c, ev, cfg, 0);
}

static struct json_object *time_json(int64_t ms)
{
	char buf[TIME_BUF];
	return ms == TIME_NONE ? NULL : json_object_new_string(time_format(ms, buf, sizeof(buf)));
}

struct json_object *cust_to_json(const struct cust *c)
{
	struct json_object *o = json_object_new_object(), *last, *open;

	if (!o)
		return NULL;
	json_object_object_add(o, "id", json_object_new_string_len(c->id, (int)c->id_len));
	json_object_object_add(o, "profile", cust_profile_json(c));
	json_object_object_add(o, "first_seen", time_json(c->first_seen));
	json_object_object_add(o, "last_seen", time_json(c->last_seen));
	json_object_object_add(o, "events", json_object_new_int64((int64_t)c->events));
	last = json_object_new_object();
	for (size_t i = 0; i < c->ntypes; i++)
		json_object_object_add(last, c->types[i].type, time_json(c->types[i].last));
	json_object_object_add(o, "last", last);
	open = json_object_new_object();
	for (size_t i = 0; i < c->ncases; i++) {
		const struct open_case *oc = &c->cases[i];
		struct json_object *list, *entry;
		if (oc->closed != TIME_NONE)
			continue;
		entry = json_object_new_object();
		if (!json_object_object_get_ex(open, oc->name, &list)) {
			list = json_object_new_array();
			json_object_object_add(open, oc->name, list);
		}
		json_object_object_add(entry, "ref", oc->ref[0] ? json_object_new_string(oc->ref) : NULL);
		json_object_object_add(entry, "opened", time_json(oc->opened));
		json_object_object_add(entry, "due", time_json(oc->due));
		json_object_array_add(list, entry);
	}
	json_object_object_add(o, "open", open);
	return o;
}

struct json_object *cust_row_json(const struct cust *c)
{
	static const char *const keys[] = { "name", "owner", "tier", "stage", "value" };
	struct json_object *o = json_object_new_object();
	const struct profile_field *f;

	if (!o)
		return NULL;
	json_object_object_add(o, "id", json_object_new_string_len(c->id, (int)c->id_len));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if ((f = cust_profile_get(c, keys[i])))
			json_object_object_add(o, keys[i], profile_field_json(f));
	json_object_object_add(o, "first_seen", time_json(c->first_seen));
	json_object_object_add(o, "last_seen", time_json(c->last_seen));
	json_object_object_add(o, "events", json_object_new_int64((int64_t)c->events));
	return o;
}
