/*
 * Many shards' answers to one scattered control request as one answer
 * (PROTOCOL.md §9.7): what a client of the cluster sees instead of a single
 * hearthd's answer. Every shard has the same rules, so `rules` (and a
 * backtest's `per_day`) are one row per rule (day) with the shards' counts
 * added, not one per shard.
 */
#include <json-c/json.h>
#include <string.h>

#include "hearth/natsctl.h"

static int has_partition(struct json_object *ans, uint32_t p)
{
	struct json_object *owns;

	if (!json_object_object_get_ex(ans, "owns", &owns) || !json_object_is_type(owns, json_type_array))
		return 0;
	for (size_t i = 0; i < json_object_array_length(owns); i++)
		if (json_object_get_int64(json_object_array_get_idx(owns, i)) == (int64_t)p)
			return 1;
	return 0;
}

int natsctl_covered(struct json_object *answers, uint32_t partitions, struct json_object *missing)
{
	int all = 1;

	for (uint32_t p = 0; p < partitions; p++) {
		int have = 0;
		for (size_t i = 0; !have && i < json_object_array_length(answers); i++)
			have = has_partition(json_object_array_get_idx(answers, i), p);
		if (!have) {
			all = 0;
			if (missing)
				json_object_array_add(missing, json_object_new_int64(p));
		}
	}
	return all;
}

static double score_of(struct json_object *row)
{
	struct json_object *v;
	return json_object_object_get_ex(row, "score", &v) && v ? json_object_get_double(v) : -1e300;
}

static int by_score_desc(const void *a, const void *b)
{
	double x = score_of(*(struct json_object *const *)a), y = score_of(*(struct json_object *const *)b);
	return x < y ? 1 : x > y ? -1 : 0;
}

static int summed_key(const char *key, struct json_object *val)
{
	/* backtest's totals too: each shard replayed its own customers (peak_firing is the
	 * sum of the shards' peaks, which need not have come at once: an upper bound) */
	static const char *const sums[] = { "customers", "events", "firing", "pending", "deferred",
					    "seq_total", "fired", "resolved", "repeats", "firing_at_end",
					    "peak_firing", NULL };

	for (const char *const *s = sums; *s; s++)
		if (!strcmp(key, *s) && json_object_is_type(val, json_type_int))
			return 1;
	return 0;
}

static struct json_object *joined(struct json_object *answers, const char *key)
{
	struct json_object *list = json_object_new_array();

	for (size_t i = 0; i < json_object_array_length(answers); i++) {
		struct json_object *part = json_object_object_get(json_object_array_get_idx(answers, i), key);
		for (size_t j = 0; part && j < json_object_array_length(part); j++)
			json_object_array_add(list, json_object_get(json_object_array_get_idx(part, j)));
	}
	return list;
}

static struct json_object *shards_of(struct json_object *answers)
{
	struct json_object *shards = json_object_new_array(), *v;

	for (size_t i = 0; i < json_object_array_length(answers); i++) {
		struct json_object *a = json_object_array_get_idx(answers, i), *s = json_object_new_object();
		json_object_object_add(s, "shard", json_object_get(json_object_object_get(a, "shard")));
		json_object_object_add(s, "owns", json_object_get(json_object_object_get(a, "owns")));
		if (json_object_object_get_ex(a, "seq", &v))
			json_object_object_add(s, "seq", json_object_get(v));
		json_object_array_add(shards, s);
	}
	return shards;
}

/*
 * Rows that every shard lists once each, the same `by` (a rule's name, a day) on
 * every shard, made one row per value: integers added, the rest the first
 * shard's (or the first that is not null).
 */
static struct json_object *rows_by(struct json_object *answers, const char *key, const char *by)
{
	struct json_object *list = json_object_new_array(), *index = json_object_new_object();

	for (size_t i = 0; i < json_object_array_length(answers); i++) {
		struct json_object *part = json_object_object_get(json_object_array_get_idx(answers, i), key);
		for (size_t j = 0; part && j < json_object_array_length(part); j++) {
			struct json_object *row = json_object_array_get_idx(part, j), *have = NULL;
			const char *name = json_object_get_string(json_object_object_get(row, by));
			if (!name || !json_object_object_get_ex(index, name, &have)) {
				struct json_object *copy = NULL;
				json_object_deep_copy(row, &copy, NULL);
				json_object_array_add(list, copy);
				if (name)
					json_object_object_add(index, name, json_object_get(copy));
				continue;
			}
			json_object_object_foreach(row, k, v) {
				struct json_object *mine = json_object_object_get(have, k);
				if (json_object_is_type(v, json_type_int) && json_object_is_type(mine, json_type_int))
					json_object_set_int64(mine, json_object_get_int64(mine) + json_object_get_int64(v));
				else if (!mine && v)
					json_object_object_add(have, k, json_object_get(v));
			}
		}
	}
	json_object_put(index);
	return list;
}

/* `top`: ranked again and cut to n; every shard cut its own list to n (or its
 * default), so none is longer than the deployment's answer may be. */
static void rerank(struct json_object *req, struct json_object *answers, struct json_object *list)
{
	struct json_object *nv;
	size_t want = json_object_object_get_ex(req, "n", &nv) ? (size_t)json_object_get_int64(nv) : 0;

	json_object_array_sort(list, by_score_desc);
	if (!want)
		for (size_t i = 0; i < json_object_array_length(answers); i++) {
			struct json_object *l = json_object_object_get(json_object_array_get_idx(answers, i), "customers");
			if (l && json_object_array_length(l) > want)
				want = json_object_array_length(l);
		}
	if (json_object_array_length(list) > want)
		json_object_array_del_idx(list, want, json_object_array_length(list) - want);
}

struct json_object *natsctl_merge(struct json_object *req, struct json_object *answers,
				  struct json_object *missing)
{
	struct json_object *first = json_object_array_get_idx(answers, 0), *out, *v;
	const char *cmd = json_object_get_string(json_object_object_get(req, "cmd"));
	size_t n = json_object_array_length(answers);

	for (size_t i = 0; i < n; i++) {
		struct json_object *ok, *a = json_object_array_get_idx(answers, i);
		if (!json_object_object_get_ex(a, "ok", &ok) || !json_object_get_boolean(ok))
			return json_object_get(a);      /* the first refusal explains itself */
	}
	out = json_object_new_object();
	json_object_object_foreach(first, key, val) {
		if (!strcmp(key, "shard") || !strcmp(key, "owns") || !strcmp(key, "seq"))
			continue;
		if (summed_key(key, val)) {
			int64_t total = 0;
			for (size_t i = 0; i < n; i++)
				total += json_object_get_int64(json_object_object_get(json_object_array_get_idx(answers, i), key));
			json_object_object_add(out, key, json_object_new_int64(total));
		} else if (cmd && !strcmp(cmd, "rules") && !strcmp(key, "rules")) {
			json_object_object_add(out, key, rows_by(answers, key, "name"));
		} else if (cmd && !strcmp(cmd, "backtest") && !strcmp(key, "per_day")) {
			json_object_object_add(out, key, rows_by(answers, key, "day"));
		} else if (json_object_is_type(val, json_type_array)) {
			json_object_object_add(out, key, joined(answers, key));
		} else {
			json_object_object_add(out, key, json_object_get(val));
		}
	}
	json_object_object_add(out, "shards", shards_of(answers));
	json_object_object_del(out, "cursor");  /* cursors are per shard */
	if (cmd && !strcmp(cmd, "top") && json_object_object_get_ex(out, "customers", &v))
		rerank(req, answers, v);
	if (missing && json_object_array_length(missing) > 0) {
		json_object_object_add(out, "complete", json_object_new_boolean(0));
		json_object_object_add(out, "missing_partitions", json_object_get(missing));
	} else {
		json_object_object_add(out, "complete", json_object_new_boolean(1));
	}
	return out;
}
