/*
 * Silences (PROTOCOL.md §5.15): kept in memory for evaluation, which asks
 * whether one covers a notification, and in the store, as JSON by id.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_impl.h"
#include "hearth/event.h"
#include "hearth/ingest_clock.h"
#include "hearth/json.h"
#include "hearth/log.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/units.h"

int engine_silenced(struct engine *eng, const char *rule, const struct cust *c, int64_t now)
{
	const char *owner = cust_profile_string(c, "owner");

	for (size_t i = 0; i < eng->nsilences; i++) {
		const struct silence *s = &eng->silences[i];
		if (s->until <= now)
			continue;
		if (s->rule[0] && strcmp(s->rule, rule) != 0)
			continue;
		if (s->customer[0] && (strlen(s->customer) != c->id_len || memcmp(s->customer, c->id, c->id_len)))
			continue;
		if (s->owner[0] && (!owner || strcmp(s->owner, owner) != 0))
			continue;
		return 1;
	}
	return 0;
}

struct json_object *silence_to_json(const struct silence *s)
{
	struct json_object *o = json_object_new_object();
	char buf[TIME_BUF];

	json_object_object_add(o, "id", json_object_new_int64((int64_t)s->id));
	if (s->rule[0])
		json_object_object_add(o, "rule", json_object_new_string(s->rule));
	if (s->customer[0])
		json_object_object_add(o, "customer", json_object_new_string(s->customer));
	if (s->owner[0])
		json_object_object_add(o, "owner", json_object_new_string(s->owner));
	json_object_object_add(o, "until", json_object_new_string(time_format(s->until, buf, sizeof(buf))));
	json_object_object_add(o, "created", json_object_new_string(time_format(s->created, buf, sizeof(buf))));
	if (s->by[0])
		json_object_object_add(o, "by", json_object_new_string(s->by));
	if (s->comment[0])
		json_object_object_add(o, "comment", json_object_new_string(s->comment));
	return o;
}

static void copy_field(struct json_object *o, const char *key, char *dst, size_t size)
{
	struct json_object *v;

	dst[0] = '\0';
	if (json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_string))
		snprintf(dst, size, "%s", json_object_get_string(v));
}

static int silence_from_json(struct json_object *o, struct silence *s)
{
	struct json_object *v;

	memset(s, 0, sizeof(*s));
	if (!json_object_object_get_ex(o, "id", &v))
		return -1;
	s->id = (uint64_t)json_object_get_int64(v);
	copy_field(o, "rule", s->rule, sizeof(s->rule));
	copy_field(o, "customer", s->customer, sizeof(s->customer));
	copy_field(o, "owner", s->owner, sizeof(s->owner));
	copy_field(o, "by", s->by, sizeof(s->by));
	copy_field(o, "comment", s->comment, sizeof(s->comment));
	if (!json_object_object_get_ex(o, "until", &v) || time_from_json(v, &s->until) < 0)
		return -1;
	if (json_object_object_get_ex(o, "created", &v))
		time_from_json(v, &s->created);
	return 0;
}

static int load_silence(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
	struct engine *eng = ctx;
	struct json_object *o = json_parse_whole(eng->tok, val, vlen, NULL);
	struct silence s;

	(void)key;
	(void)klen;
	if (o && silence_from_json(o, &s) == 0) {
		struct silence *more = realloc(eng->silences, (eng->nsilences + 1) * sizeof(*more));
		if (more) {
			eng->silences = more;
			eng->silences[eng->nsilences++] = s;
			if (s.id >= eng->next_silence_id)
				eng->next_silence_id = s.id + 1;
		}
	}
	json_object_put(o);
	return 0;
}

int engine_load_silences(struct engine *eng, struct herr *err)
{
	if (store_each(eng->st, DB_SILENCES, load_silence, eng, err) < 0)
		return -1;
	if (eng->next_silence_id == 0)
		eng->next_silence_id = 1;
	return 0;
}

struct silence_ctx {
	uint64_t id;
	const char *text;               /* NULL: delete */
};

static int silence_fn(struct wtxn *w, void *vctx, struct herr *err)
{
	struct silence_ctx *ctx = vctx;
	uint8_t key[STORE_SEQ_KEY];
	size_t klen = store_seq_key(key, ctx->id);

	(void)err;
	if (ctx->text)
		wtxn_put(w, DB_SILENCES, key, klen, ctx->text, strlen(ctx->text), 0);
	else
		wtxn_del(w, DB_SILENCES, key, klen);
	return w->rc ? -1 : 0;
}

int engine_silence_add(struct engine *eng, struct json_object *req, struct json_object *ans,
		       struct herr *err)
{
	struct silence s = { 0 };
	struct json_object *v, *o;
	int64_t now = ingest_clock_now(eng->clock), dur;
	struct silence_ctx ctx;
	struct silence *more;
	int rc;

	copy_field(req, "rule", s.rule, sizeof(s.rule));
	copy_field(req, "customer", s.customer, sizeof(s.customer));
	copy_field(req, "owner", s.owner, sizeof(s.owner));
	copy_field(req, "by", s.by, sizeof(s.by));
	copy_field(req, "comment", s.comment, sizeof(s.comment));
	if (s.rule[0] && !ruleset_find(eng->rs, s.rule))
		return herr_set(err, HERR_NOT_FOUND, "no rule '%s'", s.rule);
	if (json_object_object_get_ex(req, "until", &v)) {
		if (time_from_json(v, &s.until) < 0)
			return herr_set(err, HERR_BAD_REQUEST, "until: must be RFC 3339 text or unix ms");
	} else if (json_object_object_get_ex(req, "for", &v)) {
		if (!json_object_is_type(v, json_type_string) ||
		    duration_parse(json_object_get_string(v), (size_t)json_object_get_string_len(v), &dur) < 0)
			return herr_set(err, HERR_BAD_REQUEST, "for: must be a duration such as 2h or 3d");
		s.until = now + dur;
	} else {
		return herr_set(err, HERR_BAD_REQUEST, "a silence needs 'until' or 'for'");
	}
	if (s.until <= now)
		return herr_set(err, HERR_BAD_REQUEST, "the silence would end before it starts");
	s.id = eng->next_silence_id;
	s.created = now;
	o = silence_to_json(&s);
	ctx = (struct silence_ctx){ s.id, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) };
	rc = store_write(eng->st, silence_fn, &ctx, err);
	json_object_put(o);
	if (rc < 0)
		return -1;
	if (!(more = realloc(eng->silences, (eng->nsilences + 1) * sizeof(*more))))
		return herr_set(err, HERR_NOMEM, "out of memory");
	eng->silences = more;
	eng->silences[eng->nsilences++] = s;
	eng->next_silence_id++;
	eng->silences_gen++;
	json_object_object_add(ans, "id", json_object_new_int64((int64_t)s.id));
	log_info("silence, %llu added by '%s'", (unsigned long long)s.id, s.by[0] ? s.by : "?");
	return 0;
}

void silences_answer(const struct silence *s, size_t n, int64_t now, struct json_object *ans)
{
	struct json_object *list = json_object_new_array();

	for (size_t i = 0; i < n; i++)
		if (s[i].until > now)
			json_object_array_add(list, silence_to_json(&s[i]));
	json_object_object_add(ans, "silences", list);
}

void engine_silences(const struct engine *eng, const struct silence **s, size_t *n, uint64_t *gen)
{
	*s = eng->silences;
	*n = eng->nsilences;
	*gen = eng->silences_gen;
}

int engine_silence_remove(struct engine *eng, uint64_t id, struct herr *err)
{
	struct silence_ctx ctx = { id, NULL };

	for (size_t i = 0; i < eng->nsilences; i++) {
		if (eng->silences[i].id != id)
			continue;
		if (store_write(eng->st, silence_fn, &ctx, err) < 0)
			return -1;
		eng->silences[i] = eng->silences[--eng->nsilences];
		eng->silences_gen++;
		return 0;
	}
	return herr_set(err, HERR_NOT_FOUND, "no silence %llu", (unsigned long long)id);
}
