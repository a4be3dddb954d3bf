/*
 * Commands about alerts and notifications (PROTOCOL.md §5.13-5.15, §5.19): listings,
 * acks, silences and the replay of the outbox.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands_impl.h"
#include "hearth/alert.h"
#include "hearth/backtest.h"
#include "hearth/batch.h"
#include "hearth/codec.h"
#include "hearth/config.h"
#include "hearth/dry_run.h"
#include "hearth/engine.h"
#include "hearth/eval.h"
#include "hearth/event.h"
#include "hearth/expr.h"
#include "hearth/group_commit.h"
#include "hearth/limits.h"
#include "hearth/metrics.h"
#include "hearth/notify.h"
#include "hearth/outbox.h"
#include "hearth/rules.h"
#include "hearth/server.h"
#include "hearth/silence.h"
#include "hearth/state.h"
#include "hearth/store.h"
#include "hearth/timeline.h"
#include "hearth/units.h"

static struct cust *load_customer(void *rd, MDB_txn *txn, const char *id, size_t len, int *owned,
				  struct herr *err)
{
	return reader_customer(rd, txn, id, len, owned, err);
}

/* Alert state is committed before the answers of what changed it: the read transaction sees it. */
int cmd_alerts(struct reader *rd, struct json_object *req, struct json_object *ans,
	       struct herr *err)
{
	MDB_txn *txn;
	int rc;

	if (reader_begin(rd, &txn, err) < 0)
		return -1;
	rc = engine_alerts_list(rd->as, rd->st, rd->rs, txn, load_customer, rd, req, ans, err);
	if (rc == 0) {
		struct json_object *list;
		if (json_object_object_get_ex(ans, "alerts", &list))
			reader_firing_now(rd, txn, list, NULL);
	}
	reader_end(rd, txn);
	return rc;
}

int cmd_ack(struct server *srv, struct json_object *req, struct json_object *ans,
		   struct herr *err)
{
	const char *rule, *customer, *by;
	size_t rlen, clen, blen;

	(void)ans;
	if (arg_string(req, "rule", 1, &rule, &rlen, err) < 0 ||
	    arg_id(req, "customer", &customer, &clen, err) < 0 ||
	    arg_string(req, "by", 0, &by, &blen, err) < 0)
		return -1;
	return engine_ack(srv->engine, rule, customer, clen, by, err);
}

int cmd_silence_add(struct server *srv, struct json_object *req, struct json_object *ans,
			   struct herr *err)
{
	return engine_silence_add(srv->engine, req, ans, err);
}

/* The silences as the writer last posted them (on the writer: its own). */
int cmd_silence_list(struct reader *rd, struct json_object *req, struct json_object *ans,
		     struct herr *err)
{
	struct silence *s;
	size_t n;
	int owned;

	(void)req;
	if (reader_silences(rd, &s, &n, &owned, err) < 0)
		return -1;
	silences_answer(s, n, reader_now(rd), ans);
	if (owned)
		free(s);
	return 0;
}

int cmd_silence_remove(struct server *srv, struct json_object *req, struct json_object *ans,
			      struct herr *err)
{
	struct json_object *v = arg(req, "id");

	(void)ans;
	if (!v || !json_object_is_type(v, json_type_int))
		return herr_set(err, HERR_BAD_REQUEST, "id: required, the silence's number");
	return engine_silence_remove(srv->engine, (uint64_t)json_object_get_int64(v), err);
}

int cmd_replay(struct reader *rd, struct json_object *req, struct json_object *ans,
	       struct herr *err)
{
	struct json_object *v = arg(req, "after"), *list;
	size_t limit = HEARTH_REPLAY_DEFAULT;
	uint64_t last_seq;
	MDB_txn *txn;
	int rc;

	if (!v || !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
		return herr_set(err, HERR_BAD_REQUEST, "after: required, a seq (0 for the start)");
	if ((v = arg(req, "limit")) && arg_limit(req, limit, &limit, err) < 0)
		return -1;
	if (reader_begin(rd, &txn, err) < 0)
		return -1;
	list = json_object_new_array();
	rc = outbox_replay_in(rd->st, txn, (uint64_t)json_object_get_int64(arg(req, "after")), limit,
			      list, &last_seq, err);
	reader_end(rd, txn);
	if (rc < 0) {
		json_object_put(list);
		return -1;
	}
	json_object_object_add(ans, "notifications", list);
	json_object_object_add(ans, "last_seq", json_object_new_int64((int64_t)last_seq));
	return 0;
}
