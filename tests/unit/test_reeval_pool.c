/*
 * The re-evaluation pool lending an ingest group's customers
 * (src/engine/reeval_worker.h): a worker takes chunks as they are lent, and
 * at lend_end the writer evaluates the chunks no worker took yet, beside the
 * workers ("the seat"). Which customers each gets depends on timing; what
 * must not is the result: every lent customer evaluated exactly once, in one
 * batch, with the changes its own state calls for.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/alert.h"
#include "hearth/config.h"
#include "hearth/event.h"
#include "hearth/log.h"
#include "hearth/loop.h"
#include "hearth/rules.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"
#include "../../src/engine/reeval_worker.h"

#define NOW      1767225600000LL    /* 2026-01-01T00:00:00Z */
#define CUSTS    3000               /* about a hundred chunks of 32 */
#define ROUNDS   20                 /* lendings tried until the seat and a worker both had some */
#define MAP_SIZE (64ULL << 20)

/* Customer i: a call 40 days ago (i % 3 == 0: quiet_month fires), two calls this week (1: busy), one call yesterday (2: nothing). */
static const char YAML[] =
	"rules:\n"
	"  - name: quiet_month\n"
	"    when: 'since(call) > 30d'\n"
	"    for: 0s\n"
	"    severity: warning\n"
	"    summary: \"{id} has not been called for a month\"\n"
	"  - name: busy\n"
	"    when: 'count(call, 7d) >= 2'\n"
	"    for: 0s\n"
	"    severity: info\n"
	"    summary: \"{id} was called twice this week\"\n";

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

struct fx {
	char dir[64];
	struct config *cfg;
	struct ruleset *rs;
	struct store *st;
	struct timeline *tl;
	struct loop *loop;
	struct reeval_pool *pool;
	struct cust *custs[CUSTS];
};

static void ready(void *ctx)
{
	(void)ctx; /* lending waits for its workers: never called */
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char errors[2048];
	struct herr err = { 0 };

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/hearth-unit-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	f->cfg = config_load_string(YAML, strlen(YAML), "t.yaml", errors, sizeof(errors));
	if (!f->cfg)
		fail_msg("config: %s", errors);
	f->rs = ruleset_compile(f->cfg, errors, sizeof(errors));
	if (!f->rs)
		fail_msg("rules: %s", errors);
	if (!(f->st = store_open(f->dir, MAP_SIZE, MAP_SIZE, &err)) || !(f->tl = timeline_open(f->st, f->cfg, &err)))
		fail_msg("store: %s", err.msg);
	f->loop = loop_new();
	assert_non_null(f->loop);
	f->pool = reeval_pool_new(f->st, 1, f->loop, ready, NULL, &err);
	if (!f->pool)
		fail_msg("pool: %s", err.msg);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;

	reeval_pool_free(f->pool);
	loop_free(f->loop);
	timeline_close(f->tl);
	store_close(f->st);
	ruleset_free(f->rs);
	config_free(f->cfg);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void call(struct fx *f, struct cust *c, int64_t ts)
{
	struct event ev;

	memset(&ev, 0, sizeof(ev));
	ev.ts = ts;
	ev.customer = c->id;
	ev.customer_len = c->id_len;
	ev.type = "call";
	ev.type_len = 4;
	assert_int_equal(cust_apply(c, &ev, f->cfg), 0);
}

static void make_customers(struct fx *f, int round)
{
	char id[32];

	for (size_t i = 0; i < CUSTS; i++) {
		int n = snprintf(id, sizeof(id), "r%02d-c%04zu", round, i);
		struct cust *c = cust_new(id, (size_t)n);
		assert_non_null(c);
		if (i % 3 == 0) {
			call(f, c, NOW - 40 * MS_PER_DAY);
		} else if (i % 3 == 1) {
			call(f, c, NOW - 2 * MS_PER_DAY);
			call(f, c, NOW - MS_PER_DAY);
		} else {
			call(f, c, NOW - MS_PER_DAY);
		}
		f->custs[i] = c;
	}
}

/* The rule customer i fires, by its index in the ruleset; -1 none. */
static ssize_t expected_rule(const struct fx *f, size_t i)
{
	return i % 3 == 2 ? -1 : ruleset_index(f->rs, i % 3 == 0 ? "quiet_month" : "busy");
}

/* One lending of every customer; how many the seat (the writer beside the worker) evaluated. */
static size_t lend_round(struct fx *f, int round)
{
	unsigned char seen[CUSTS] = { 0 };
	struct herr err = { 0 };
	size_t by_seat = 0;
	MDB_txn *txn;

	make_customers(f, round);
	assert_int_equal(reeval_pool_lend_begin(f->pool, f->rs, NOW, 1, timeline_alert_states(f->tl), CUSTS), 0);
	for (size_t i = 0; i < CUSTS; i++)
		reeval_pool_lend(f->pool, f->custs[i], i);
	if (store_read_begin(f->st, &txn, &err) < 0)
		fail_msg("read: %s", err.msg);
	reeval_pool_lend_end(f->pool, txn);
	store_read_end(txn);

	size_t nbatches = reeval_pool_lent_size(f->pool);
	assert_int_equal(nbatches, reeval_pool_size(f->pool) + 1);
	for (size_t b = 0; b < nbatches; b++) {
		struct reeval_batch *batch = reeval_pool_batch(f->pool, b);
		assert_false(batch->failed);
		for (size_t k = 0; k < batch->ncusts; k++) {
			const struct reeval_cust *rc = &batch->custs[k];
			assert_true(rc->index < CUSTS);
			assert_int_equal(seen[rc->index], 0); /* evaluated once, in one batch */
			seen[rc->index] = 1;
			assert_int_not_equal(rc->nchanges, SIZE_MAX); /* no rule reads the timeline */
			ssize_t want = expected_rule(f, rc->index);
			assert_int_equal(rc->nchanges, want < 0 ? 0 : 1);
			if (want >= 0) {
				const struct reeval_change *ch = &batch->changes[rc->first_change];
				assert_int_equal(ch->rule, (size_t)want);
				assert_int_equal(ch->a.state, ALERT_FIRING);
				assert_int_equal(ch->kind, NOTIFY_FIRING);
			}
			by_seat += b == nbatches - 1;
		}
		reeval_batch_reset(batch);
	}
	for (size_t i = 0; i < CUSTS; i++) {
		assert_int_equal(seen[i], 1);
		cust_free(f->custs[i]);
	}
	return by_seat;
}

static void test_lent_customers_evaluated_once_whoever_takes_them(void **state)
{
	struct fx *f = *state;
	int seat_and_worker = 0;

	for (int round = 0; round < ROUNDS && !seat_and_worker; round++) {
		size_t by_seat = lend_round(f, round);
		seat_and_worker = by_seat > 0 && by_seat < CUSTS;
	}
	if (!seat_and_worker)
		skip(); /* the split is timing's: every round went to one side, the results held all the same */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lent_customers_evaluated_once_whoever_takes_them, fx_setup,
						fx_teardown),
	};
	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
