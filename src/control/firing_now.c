/*
 * What a firing alert says, rendered when it is read (PROTOCOL.md §4.1). The
 * engine stores what an alert's last notification said; re-rendering and
 * rewriting it at every evaluation of its customer cost a fifth of ingest's
 * time (docs/PERFORMANCE.md). A reader has the rules, the customer's state and
 * the clock, so `alerts` and `customer` render it from them as they answer,
 * and agree with `explain` at that moment.
 */
#include <json-c/json.h>
#include <string.h>

#include "commands_impl.h"
#include "hearth/alert.h"
#include "hearth/engine.h"
#include "hearth/eval.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/units.h"

/* The customer in hand: a listing names one customer's alerts one after another. */
struct held {
	struct cust *c;
	int owned;
};

static void held_drop(struct held *h)
{
	if (h->c && h->owned)
		cust_free(h->c);
	h->c = NULL;
	h->owned = 0;
}

static const struct cust *held_get(struct reader *rd, MDB_txn *txn, struct held *h, const char *id,
				   size_t len)
{
	struct herr err = { 0 };

	if (h->c && h->c->id_len == len && memcmp(h->c->id, id, len) == 0)
		return h->c;
	held_drop(h);
	h->c = reader_customer(rd, txn, id, len, &h->owned, &err);
	return h->c;
}

/* A string member of o, its length in *len; NULL if absent. */
static const char *member(struct json_object *o, const char *key, size_t *len)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	*len = (size_t)json_object_get_string_len(v);
	return json_object_get_string(v);
}

/* One alert object of an answer: a firing one says what its rule renders now (kept as stored if it cannot). */
static void render_one(struct reader *rd, MDB_txn *txn, struct held *h, struct json_object *o, int64_t now)
{
	size_t state_len, rule_len, len;
	const char *state = member(o, "state", &state_len);
	const char *rule = member(o, "rule", &rule_len);
	const char *id = member(o, "customer", &len);
	const struct rule *r;
	const struct cust *c;
	struct engine_scan scan;
	struct eval_env env;
	char summary[sizeof(((struct alert *)0)->summary)];
	char at[TIME_BUF];

	if (!state || strcmp(state, "firing") != 0 || !rule || !id || !rd->rs ||
	    !(r = ruleset_find(rd->rs, rule)) || !(c = held_get(rd, txn, h, id, len)))
		return;
	reader_env(rd, txn, &scan, c, now, &env);
	tmpl_render(&r->summary, &env, summary, sizeof(summary));
	json_object_object_add(o, "summary", json_object_new_string(summary));
	json_object_object_add(o, "values", rule_values(r, &env));
	json_object_object_add(o, "values_at", json_object_new_string(time_format(now, at, sizeof(at))));
}

void reader_firing_now(struct reader *rd, MDB_txn *txn, struct json_object *alerts, const struct cust *known)
{
	struct held h = { (struct cust *)known, 0 };
	int64_t now = reader_now(rd);
	size_t n;

	if (!alerts || !json_object_is_type(alerts, json_type_array))
		return;
	n = json_object_array_length(alerts);
	for (size_t i = 0; i < n; i++)
		render_one(rd, txn, &h, json_object_array_get_idx(alerts, i), now);
	held_drop(&h);
}
