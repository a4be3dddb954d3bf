/*
 * The key layouts of the tables other modules keep records in: alerts
 * (customer 0x00 rule, so that one customer's alerts are a prefix) and the
 * tables in seq order (u64 big-endian, so that byte order is number order).
 * Callers name a record by customer, rule or seq; only this file knows the bytes.
 */
#include <string.h>

#include "hearth/codec.h"
#include "hearth/store.h"
#include "store_impl.h"

size_t store_alert_key(uint8_t *buf, const char *customer, size_t clen, const char *rule)
{
	size_t rlen = strlen(rule);

	memcpy(buf, customer, clen);
	buf[clen] = 0;
	memcpy(buf + clen + 1, rule, rlen);
	return clen + 1 + rlen;
}

size_t store_seq_key(uint8_t *buf, uint64_t seq)
{
	be64_put(buf, seq);
	return STORE_SEQ_KEY;
}

void wtxn_append_seq(struct wtxn *w, enum store_db db, uint64_t seq, const void *val, size_t vlen)
{
	uint8_t key[STORE_SEQ_KEY];

	/* seqs only rise: LMDB appends without searching the tree */
	wtxn_put(w, db, key, store_seq_key(key, seq), val, vlen, MDB_APPEND);
}

struct seq_walk {
	store_seq_fn fn;
	void *ctx;
};

static int seq_record(const void *key, size_t klen, const void *val, size_t vlen, void *vctx)
{
	struct seq_walk *sw = vctx;

	if (klen != STORE_SEQ_KEY)
		return 0;
	return sw->fn(be64_get(key), val, vlen, sw->ctx);
}

int store_seq_walk(MDB_txn *txn, struct store *st, enum store_db db, uint64_t after,
		   store_seq_fn fn, void *ctx, struct herr *err)
{
	struct seq_walk sw = { fn, ctx };
	uint8_t key[STORE_SEQ_KEY];

	return store_walk(txn, st, db, key, store_seq_key(key, after), NULL, 0, seq_record, &sw, err);
}

struct seq_first {
	uint64_t seq;
	const void *val;
	size_t vlen;
};

static int take_first(uint64_t seq, const void *val, size_t vlen, void *ctx)
{
	struct seq_first *f = ctx;

	f->seq = seq;
	f->val = val;
	f->vlen = vlen;
	return 1;
}

int store_seq_first(MDB_txn *txn, struct store *st, enum store_db db, uint64_t *seq,
		    const void **val, size_t *vlen, struct herr *err)
{
	struct seq_first f = { 0 };
	struct seq_walk sw = { take_first, &f };
	int rc = store_walk(txn, st, db, NULL, 0, NULL, 0, seq_record, &sw, err);

	if (rc < 0)
		return -1;
	if (rc == 0)
		return 1;
	*seq = f.seq;
	if (val)
		*val = f.val;
	if (vlen)
		*vlen = f.vlen;
	return 0;
}
