/*
 * The time index: each customer's events in time order, in chunks.
 *
 *   key    customer 0x00 ts(i64 ordered) seq(u64 BE)   of the chunk's first entry
 *   chunk  u8 format 2, then per entry: the type (type_names_put_ref: its
 *          store-wide number, most often one byte), varint zigzag(ts − ts
 *          before), varint zigzag(seq − seq before); the first entry's
 *          "before" is the key. Format 1 (still read) began with a table of
 *          the chunk's type names and numbered entries by it.
 *
 * One key per event (the layout before chunks) cost 64 bytes per event and one
 * put per event in every flush, at keys spread over the whole table. A chunk
 * holds a customer's events at a few bytes each, and a flush rewrites one chunk
 * per customer: their last, where new events go (docs/PERFORMANCE.md).
 */
#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/codec.h"
#include "hearth/err.h"
#include "hearth/limits.h"
#include "store_impl.h"
#include "tindex.h"
#include "type_names.h"

#define CHUNK_FORMAT 2
#define KEY_MAX      (HEARTH_ID_MAX + 1 + 16)
/* The most one entry adds to a chunk: its type spelled out (no number), two varints. */
#define ENTRY_MAX    (1 + HEARTH_NAME_MAX + 1 + 10 + 10)

enum locate { LOC_NONE, LOC_AT, LOC_BEFORE };

static size_t chunk_key(uint8_t *buf, const char *cust, size_t len, int64_t ts, uint64_t seq)
{
	memcpy(buf, cust, len);
	buf[len] = 0;
	be64_put(buf + len + 1, i64_to_ordered(ts));
	be64_put(buf + len + 9, seq);
	return len + 17;
}

static int key_is_chunk_of(const MDB_val *key, const char *cust, size_t len)
{
	return key->mv_size == len + 17 && memcmp(key->mv_data, cust, len) == 0 &&
	       ((const uint8_t *)key->mv_data)[len] == 0;
}

static void key_pos(const MDB_val *key, size_t len, int64_t *ts, uint64_t *seq)
{
	*ts = ordered_to_i64(be64_get((const uint8_t *)key->mv_data + len + 1));
	*seq = be64_get((const uint8_t *)key->mv_data + len + 9);
}

static int pos_cmp(int64_t ats, uint64_t aseq, int64_t bts, uint64_t bseq)
{
	if (ats != bts)
		return ats < bts ? -1 : 1;
	return (aseq > bseq) - (aseq < bseq);
}

static int entry_cmp(const struct tindex_entry *a, const struct tindex_entry *b)
{
	return pos_cmp(a->ts, a->seq, b->ts, b->seq);
}

/* Format 1: the chunk's type names first, entries numbered by them. */
static int chunk_types_v1(struct rbuf *r, const char **types, size_t *tlens, size_t *nt)
{
	*nt = rbuf_u8(r);
	if (*nt == 0 || *nt > TINDEX_CHUNK_ENTRIES)
		return -1;
	for (size_t i = 0; i < *nt; i++)
		if (!(types[i] = rbuf_str8(r, &tlens[i])) || tlens[i] == 0)
			return -1;
	return 0;
}

/* Decodes a chunk found at key; its entries borrow their types from val or from tn. */
static int chunk_decode(const struct type_names *tn, const MDB_val *key, size_t len, const void *val,
			size_t vlen, struct tindex_chunk *c)
{
	const char *types[TINDEX_CHUNK_ENTRIES], *type;
	size_t tlens[TINDEX_CHUNK_ENTRIES], nt = 0, tlen;
	int64_t ts;
	uint64_t seq;
	struct rbuf r;

	key_pos(key, len, &ts, &seq);
	rbuf_init(&r, val, vlen);
	c->n = 0;
	uint8_t format = rbuf_u8(&r);
	if ((format != 1 && format != CHUNK_FORMAT) ||
	    (format == 1 && chunk_types_v1(&r, types, tlens, &nt) < 0))
		return -1;
	while (r.p < r.end && !r.failed) {
		if (format == 1) {
			uint8_t t = rbuf_u8(&r);
			type = t < nt ? types[t] : NULL;
			tlen = t < nt ? tlens[t] : 0;
		} else {
			type = type_names_get_ref(tn, &r, &tlen);
		}
		ts = (int64_t)((uint64_t)ts + unzigzag64(rbuf_varint(&r)));
		seq += unzigzag64(rbuf_varint(&r));
		if (r.failed || !type || tlen == 0 || tlen > HEARTH_NAME_MAX || c->n == TINDEX_CHUNK_ENTRIES)
			return -1;
		c->e[c->n++] = (struct tindex_entry){ ts, seq, type, (uint8_t)tlen };
	}
	return r.failed || c->n == 0 ? -1 : 0;
}

/* Encodes as many of e[0..n) as one chunk holds into s->out; returns how many. */
static size_t chunk_encode(struct type_names *tn, struct tindex_scratch *s,
			   const struct tindex_entry *e, size_t n)
{
	size_t k;

	wbuf_reset(&s->out);
	wbuf_u8(&s->out, CHUNK_FORMAT);
	for (k = 0; k < n && k < TINDEX_CHUNK_ENTRIES; k++) {
		if (k > 0 && s->out.len + ENTRY_MAX > TINDEX_CHUNK_BYTES)
			break;
		type_names_put_ref(tn, &s->out, e[k].type, e[k].type_len);
		wbuf_varint(&s->out, zigzag64((uint64_t)e[k].ts - (uint64_t)(k ? e[k - 1].ts : e[0].ts)));
		wbuf_varint(&s->out, zigzag64(e[k].seq - (k ? e[k - 1].seq : e[0].seq)));
	}
	return k;
}

/* Writes e[0..n) as chunks; flags MDB_APPEND when they follow every key in the table. */
static void chunks_put(struct wtxn *w, const char *cust, size_t len, const struct tindex_entry *e,
		       size_t n, struct tindex_scratch *s, unsigned flags)
{
	uint8_t key[KEY_MAX];

	for (size_t i = 0, k; i < n && !w->rc; i += k) {
		k = chunk_encode(store_type_names(w->st), s, e + i, n - i);
		if (s->out.failed) {
			wtxn_fail(w, ENOMEM, "the time index");
			return;
		}
		wtxn_put(w, DB_TIMELINE, key, chunk_key(key, cust, len, e[i].ts, e[i].seq), s->out.data,
			 s->out.len, flags);
	}
}

/*
 * Finds the customer's last chunk starting at or before (ts, seq): LOC_AT;
 * else their first chunk (the position is before all of them): LOC_BEFORE;
 * else LOC_NONE. The cursor stays on the chunk found; *rc gets an LMDB error.
 */
static enum locate chunk_locate(MDB_cursor *cur, const char *cust, size_t len, int64_t ts,
				uint64_t seq, MDB_val *key, MDB_val *val, int *rc)
{
	uint8_t buf[KEY_MAX];
	size_t klen = chunk_key(buf, cust, len, ts, seq);
	int found, back;

	*key = (MDB_val){ klen, buf };
	found = mdb_cursor_get(cur, key, val, MDB_SET_RANGE);
	if (found == 0 && key->mv_size == klen && memcmp(key->mv_data, buf, klen) == 0)
		return LOC_AT;
	if (found && found != MDB_NOTFOUND)
		goto failed;
	int after = found == 0 && key_is_chunk_of(key, cust, len);
	back = mdb_cursor_get(cur, key, val, found == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
	if (back == 0 && key_is_chunk_of(key, cust, len))
		return LOC_AT;
	if (back && back != MDB_NOTFOUND) {
		found = back;
		goto failed;
	}
	if (!after)
		return LOC_NONE;
	/* back to the chunk after: past a key of someone else, or the table's first */
	if ((found = mdb_cursor_get(cur, key, val, back == 0 ? MDB_NEXT : MDB_FIRST)))
		goto failed;
	return LOC_BEFORE;
failed:
	*rc = found;
	return LOC_NONE;
}

/* s->merged = the decoded chunk's first n entries and add[0..m), in order, each position once. */
static int merge(struct tindex_scratch *s, size_t n, const struct tindex_entry *add, size_t m,
		 size_t *out)
{
	const struct tindex_entry *st = s->chunk.e;
	size_t i = 0, j = 0, k = 0;

	if (n + m > s->cap) {
		size_t cap = (n + m) * 2;
		struct tindex_entry *grown = realloc(s->merged, cap * sizeof(*grown));
		if (!grown)
			return -1;
		s->merged = grown;
		s->cap = cap;
	}
	while (i < n || j < m) {
		/* on a tie the stored entry goes first: an event written again after a crash is dropped */
		int c = i == n ? 1 : j == m ? -1 : entry_cmp(&st[i], &add[j]);
		const struct tindex_entry *next = c <= 0 ? &st[i++] : &add[j++];
		if (k == 0 || entry_cmp(&s->merged[k - 1], next) != 0)
			s->merged[k++] = *next;
	}
	*out = k;
	return 0;
}

static int chunk_is_full(const struct tindex_scratch *s)
{
	return s->chunk.n == TINDEX_CHUNK_ENTRIES || s->stored.len + ENTRY_MAX > TINDEX_CHUNK_BYTES;
}

/*
 * Merges add[0..*n) into the chunk the cursor is on (stored: 1) or into new
 * chunks before next; *n is cut to the entries that belong there.
 */
static void add_run(struct wtxn *w, MDB_cursor *cur, const char *cust, size_t len,
		    const struct tindex_entry *add, size_t *n, enum locate loc, MDB_val *key,
		    MDB_val *val, struct tindex_scratch *s)
{
	int64_t next_ts = 0;
	uint64_t next_seq = 0;
	size_t stored = 0, j = 0, nmerged;
	int has_next = loc == LOC_BEFORE, rc;

	if (loc == LOC_BEFORE)
		key_pos(key, len, &next_ts, &next_seq);
	if (loc == LOC_AT) {
		MDB_val at = *key;
		uint8_t kbuf[KEY_MAX];
		memcpy(kbuf, key->mv_data, key->mv_size);
		at.mv_data = kbuf;
		wbuf_reset(&s->stored);
		wbuf_put(&s->stored, val->mv_data, val->mv_size);
		if (s->stored.failed) {
			wtxn_fail(w, ENOMEM, "the time index");
			return;
		}
		if (chunk_decode(store_type_names(w->st), &at, len, s->stored.data, s->stored.len, &s->chunk) < 0) {
			wtxn_fail(w, MDB_CORRUPTED, "a damaged chunk of the time index");
			return;
		}
		stored = s->chunk.n;
		rc = mdb_cursor_get(cur, key, val, MDB_NEXT);
		if (rc == 0 && key_is_chunk_of(key, cust, len)) {
			has_next = 1;
			key_pos(key, len, &next_ts, &next_seq);
		} else if (rc && rc != MDB_NOTFOUND) {
			wtxn_fail(w, rc, "the time index");
			return;
		}
		/* new events after a full chunk start the next one: the full one is not rewritten */
		if (chunk_is_full(s) && entry_cmp(&add[0], &s->chunk.e[stored - 1]) > 0)
			stored = 0;
	}
	while (j < *n && (!has_next || pos_cmp(add[j].ts, add[j].seq, next_ts, next_seq) < 0))
		j++;
	*n = j;
	if (merge(s, stored, add, j, &nmerged) < 0) {
		wtxn_fail(w, ENOMEM, "the time index");
		return;
	}
	chunks_put(w, cust, len, s->merged, nmerged, s, 0);
}

void tindex_add(struct wtxn *w, const char *cust, size_t len, const struct tindex_entry *add,
		size_t n, struct tindex_scratch *s)
{
	MDB_cursor *cur;
	int rc;

	if (w->rc || n == 0)
		return;
	if ((rc = mdb_cursor_open(w->txn, store_dbi(w->st, DB_TIMELINE), &cur))) {
		wtxn_fail(w, rc, "the time index");
		return;
	}
	for (size_t i = 0, taken; i < n && !w->rc; i += taken) {
		MDB_val key, val;
		int err = 0;
		enum locate loc = chunk_locate(cur, cust, len, add[i].ts, add[i].seq, &key, &val, &err);
		if (err) {
			wtxn_fail(w, err, "the time index");
			break;
		}
		taken = n - i;
		add_run(w, cur, cust, len, add + i, &taken, loc, &key, &val, s);
	}
	mdb_cursor_close(cur);
}

void tindex_take(struct wtxn *w, const char *cust, size_t len, struct wbuf *seqs)
{
	uint8_t prefix[KEY_MAX];
	struct tindex_chunk *chunk = malloc(sizeof(*chunk));
	struct wbuf keys;
	MDB_cursor *cur = NULL;
	MDB_val key = { len + 1, prefix }, val;
	int rc;

	wbuf_init(&keys);
	if (!chunk) {
		wtxn_fail(w, ENOMEM, "forget");
		goto out;
	}
	memcpy(prefix, cust, len);
	prefix[len] = 0;
	if ((rc = mdb_cursor_open(w->txn, store_dbi(w->st, DB_TIMELINE), &cur))) {
		wtxn_fail(w, rc, "forget");
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0 && key_is_chunk_of(&key, cust, len);
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (chunk_decode(store_type_names(w->st), &key, len, val.mv_data, val.mv_size, chunk) < 0) {
			wtxn_fail(w, MDB_CORRUPTED, "a damaged chunk of the time index");
			goto out;
		}
		for (size_t i = 0; i < chunk->n; i++)
			wbuf_put(seqs, &chunk->e[i].seq, sizeof(chunk->e[i].seq));
		wbuf_put(&keys, key.mv_data, key.mv_size);
	}
	if (rc && rc != MDB_NOTFOUND)
		wtxn_fail(w, rc, "forget");
	if (keys.failed || seqs->failed)
		wtxn_fail(w, ENOMEM, "forget");
	for (size_t off = 0; off + len + 17 <= keys.len && !w->rc; off += len + 17)
		wtxn_del(w, DB_TIMELINE, keys.data + off, len + 17);
out:
	if (cur)
		mdb_cursor_close(cur);
	wbuf_free(&keys);
	free(chunk);
}

/* ---- the upgrade from one key per event ------------------------------------ */

struct upgrade {
	char cust[HEARTH_ID_MAX];
	size_t len, n;
	struct tindex_entry e[TINDEX_CHUNK_ENTRIES];
	char types[TINDEX_CHUNK_ENTRIES][HEARTH_NAME_MAX];
	struct tindex_scratch s;
};

static void upgrade_flush(struct wtxn *w, struct upgrade *u)
{
	/* old keys come in the order of the new ones, so each chunk goes at the end */
	chunks_put(w, u->cust, u->len, u->e, u->n, &u->s, MDB_APPEND);
	u->n = 0;
}

int tindex_upgrade(struct wtxn *w, MDB_dbi old, struct herr *err)
{
	struct upgrade *u = calloc(1, sizeof(*u));
	MDB_cursor *cur = NULL;
	MDB_val key, val;
	int rc, ret = -1;

	if (!u)
		return herr_set(err, HERR_NOMEM, "out of memory");
	if ((rc = mdb_cursor_open(w->txn, old, &cur))) {
		store_error(err, rc, "upgrading the time index");
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0 && !w->rc;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		size_t len = key.mv_size - 17;
		if (key.mv_size < 18 || key.mv_size - 17 > HEARTH_ID_MAX ||
		    ((const uint8_t *)key.mv_data)[len] != 0 || val.mv_size == 0 ||
		    val.mv_size > HEARTH_NAME_MAX) {
			herr_set(err, HERR_STORE_ERROR, "store, a damaged time index entry: cannot upgrade");
			goto out;
		}
		if (u->n && (len != u->len || memcmp(u->cust, key.mv_data, len) != 0 ||
			     u->n == TINDEX_CHUNK_ENTRIES))
			upgrade_flush(w, u);
		memcpy(u->cust, key.mv_data, len);
		u->len = len;
		struct tindex_entry *e = &u->e[u->n];
		key_pos(&key, len, &e->ts, &e->seq);
		memcpy(u->types[u->n], val.mv_data, val.mv_size);
		e->type = u->types[u->n];
		e->type_len = (uint8_t)val.mv_size;
		u->n++;
	}
	if (rc && rc != MDB_NOTFOUND) {
		store_error(err, rc, "upgrading the time index");
		goto out;
	}
	if (u->n)
		upgrade_flush(w, u);
	if (w->rc) {
		store_error(err, w->rc, "upgrading the time index");
		goto out;
	}
	ret = 0;
out:
	if (cur)
		mdb_cursor_close(cur);
	tindex_scratch_free(&u->s);
	free(u);
	return ret;
}

void tindex_scratch_free(struct tindex_scratch *s)
{
	free(s->merged);
	wbuf_free(&s->stored);
	wbuf_free(&s->out);
	memset(s, 0, sizeof(*s));
}

/* ---- reading ---------------------------------------------------------------- */

int tindex_iter_open(struct tindex_iter *it, struct store *st, MDB_txn *txn, const char *cust,
		     size_t len, int desc, struct herr *err)
{
	int rc;

	it->cust = cust;
	it->len = len;
	it->desc = desc;
	it->types = store_type_names(st);
	it->damaged = it->valid = 0;
	it->at = 0;
	if ((rc = mdb_cursor_open(txn, store_dbi(st, DB_TIMELINE), &it->cur)))
		return store_error(err, rc, "reading a timeline");
	return 0;
}

static void iter_load(struct tindex_iter *it, const MDB_val *key, const MDB_val *val)
{
	it->valid = chunk_decode(it->types, key, it->len, val->mv_data, val->mv_size, &it->chunk) == 0;
	it->damaged = !it->valid;
	if (it->valid)
		it->at = it->desc ? it->chunk.n - 1 : 0;
}

void tindex_iter_step(struct tindex_iter *it)
{
	MDB_val key, val;
	int rc;

	if (!it->valid)
		return;
	if (it->desc ? it->at > 0 : it->at + 1 < it->chunk.n) {
		it->at += it->desc ? (size_t)-1 : 1;
		return;
	}
	rc = mdb_cursor_get(it->cur, &key, &val, it->desc ? MDB_PREV : MDB_NEXT);
	it->valid = 0;
	if (rc && rc != MDB_NOTFOUND)
		it->damaged = 1;
	if (rc == 0 && key_is_chunk_of(&key, it->cust, it->len))
		iter_load(it, &key, &val);
}

void tindex_iter_seek(struct tindex_iter *it, int64_t ts, uint64_t seq)
{
	MDB_val key, val;
	int rc = 0;
	enum locate loc = chunk_locate(it->cur, it->cust, it->len, ts, seq, &key, &val, &rc);

	it->valid = 0;
	it->damaged = rc != 0;
	if (loc == LOC_NONE || (loc == LOC_BEFORE && it->desc))
		return;
	iter_load(it, &key, &val);
	if (!it->valid || loc == LOC_BEFORE)
		return;
	const struct tindex_entry *e = it->chunk.e;
	if (it->desc) {
		/* the chunk starts at or before the position: some entry is not after it */
		while (it->at > 0 && pos_cmp(e[it->at].ts, e[it->at].seq, ts, seq) > 0)
			it->at--;
		return;
	}
	while (it->at < it->chunk.n && pos_cmp(e[it->at].ts, e[it->at].seq, ts, seq) < 0)
		it->at++;
	if (it->at == it->chunk.n) {
		it->at--;
		tindex_iter_step(it);
	}
}

void tindex_iter_close(struct tindex_iter *it)
{
	if (it->cur)
		mdb_cursor_close(it->cur);
	it->cur = NULL;
}
