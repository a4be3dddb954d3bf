/*
 * Type names as numbers (type_names.h). The names live in one array that
 * never moves, so a reader thread holds a name's pointer as long as it likes;
 * `count` is published with release order after the name is written, and read
 * with acquire order, so a reader that sees a number sees its name.
 *
 *   types   number (u16 BE) → name
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/codec.h"
#include "hearth/err.h"
#include "hearth/limits.h"
#include "hearth/strmap.h"
#include "store_impl.h"
#include "type_names.h"

struct type_names {
	char (*names)[HEARTH_NAME_MAX + 1];
	uint8_t *lens;
	_Atomic size_t count;
	size_t stored;                  /* numbers below this are in the types table */
	size_t put_upto;                /* ... and below this, in the transaction under way */
	struct strmap numbers;          /* the writer's: name → number + 1 */
};

struct type_names *type_names_new(void)
{
	struct type_names *tn = calloc(1, sizeof(*tn));

	if (!tn)
		return NULL;
	tn->names = calloc(TYPE_NUMBERS_MAX, sizeof(*tn->names));
	tn->lens = calloc(TYPE_NUMBERS_MAX, sizeof(*tn->lens));
	strmap_init(&tn->numbers);
	if (!tn->names || !tn->lens) {
		type_names_free(tn);
		return NULL;
	}
	return tn;
}

void type_names_free(struct type_names *tn)
{
	if (!tn)
		return;
	strmap_clear(&tn->numbers);
	free(tn->names);
	free(tn->lens);
	free(tn);
}

static int add(struct type_names *tn, const char *name, size_t len)
{
	size_t n = atomic_load_explicit(&tn->count, memory_order_relaxed);

	if (n == TYPE_NUMBERS_MAX || len == 0 || len > HEARTH_NAME_MAX ||
	    strmap_put(&tn->numbers, name, len, (void *)(uintptr_t)(n + 1)) < 0)
		return -1;
	memcpy(tn->names[n], name, len);
	tn->names[n][len] = '\0';
	tn->lens[n] = (uint8_t)len;
	atomic_store_explicit(&tn->count, n + 1, memory_order_release);
	return (int)n;
}

int type_names_load(struct type_names *tn, MDB_txn *txn, MDB_dbi dbi, struct herr *err)
{
	MDB_cursor *cur;
	MDB_val key, val;
	int rc, ret = 0;

	if ((rc = mdb_cursor_open(txn, dbi, &cur)))
		return store_error(err, rc, "reading the type names");
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		const uint8_t *k = key.mv_data;
		size_t expect = atomic_load_explicit(&tn->count, memory_order_relaxed);
		if (key.mv_size != 2 || (size_t)(k[0] << 8 | k[1]) != expect ||
		    add(tn, val.mv_data, val.mv_size) < 0) {
			ret = herr_set(err, HERR_STORE_ERROR, "store, damaged type names (number %zu)", expect);
			break;
		}
	}
	if (rc && rc != MDB_NOTFOUND && ret == 0)
		ret = store_error(err, rc, "reading the type names");
	mdb_cursor_close(cur);
	tn->stored = tn->put_upto = atomic_load_explicit(&tn->count, memory_order_relaxed);
	return ret;
}

int type_names_find(const struct type_names *tn, const char *name, size_t len)
{
	uintptr_t found = (uintptr_t)strmap_get(&tn->numbers, name, len);

	return found ? (int)(found - 1) : -1;
}

int type_names_number(struct type_names *tn, const char *name, size_t len)
{
	int n = type_names_find(tn, name, len);

	return n >= 0 ? n : add(tn, name, len);
}

const char *type_names_name(const struct type_names *tn, uint64_t number, size_t *len)
{
	size_t count = atomic_load_explicit(&tn->count, memory_order_acquire);

	if (number >= count)
		return NULL;
	*len = tn->lens[number];
	return tn->names[number];
}

void type_names_put_new(struct type_names *tn, struct wtxn *w)
{
	size_t count = atomic_load_explicit(&tn->count, memory_order_relaxed);

	/* from `stored`, not `put_upto`: a transaction that failed put them in vain */
	for (size_t n = tn->stored; n < count; n++) {
		uint8_t key[2] = { (uint8_t)(n >> 8), (uint8_t)n };
		wtxn_put(w, DB_TYPES, key, 2, tn->names[n], tn->lens[n], 0);
	}
	tn->put_upto = count;
}

void type_names_committed(struct type_names *tn)
{
	tn->stored = tn->put_upto;
}

void type_names_put_ref(struct type_names *tn, struct wbuf *out, const char *name, size_t len)
{
	int n = tn ? type_names_number(tn, name, len) : -1;

	if (n >= 0) {
		wbuf_varint(out, (uint64_t)n + 1);
		return;
	}
	wbuf_varint(out, 0);
	wbuf_str8(out, name, len);
}

const char *type_names_get_ref(const struct type_names *tn, struct rbuf *r, size_t *len)
{
	uint64_t ref = rbuf_varint(r);

	*len = 0;
	if (r->failed)
		return NULL;
	if (ref == 0)
		return rbuf_str8(r, len);
	if (!tn) {
		r->failed = 1;
		return NULL;
	}
	const char *name = type_names_name(tn, ref - 1, len);
	if (!name)
		r->failed = 1;
	return name;
}
