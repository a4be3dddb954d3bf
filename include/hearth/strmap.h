/*
 * A hash map from byte strings to pointers: open addressing, linear probing,
 * keys copied and owned by the map. Used for the in-memory side of the store
 * (customers changed since the last flush, event ids not yet indexed).
 *
 * A table that doubles moves its entries over a little at each later insert
 * (as Redis's dict does), not all at once: a thread's loop slice must not
 * carry the whole move, which took 45-48 ms at 91,750 entries. Deletes move
 * some too, so a map drained after a burst gives the old table back; one that
 * stops changing mid-move keeps it (half the new table's size) until it
 * changes again or is shrunk.
 */
#ifndef HEARTH_STRMAP_H
#define HEARTH_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_slot {
	char *key;              /* NULL: empty */
	size_t len;
	uint64_t hash;
	void *value;
};

struct strmap {
	struct strmap_slot *slots;      /* the table inserts go to */
	size_t cap, count;              /* count: entries in both tables */
	/* Still to move while growing: old's whole probe clusters from old_pos on, old_left slots of them. */
	struct strmap_slot *old;
	size_t old_cap, old_pos, old_left, old_count;
};

/* The map's hash of a key (FNV-1a, folded), for tables of other shapes. */
uint64_t strmap_hash(const void *key, size_t len);
void strmap_init(struct strmap *m);
/* Frees keys; values are the caller's (walk them first). */
void strmap_clear(struct strmap *m);
void *strmap_get(const struct strmap *m, const void *key, size_t len);
/* The same with key's strmap_hash, computed once by a caller that needs it again. */
void *strmap_get_hashed(const struct strmap *m, const void *key, size_t len, uint64_t hash);
/*
 * Cache hints for a loop that knows its next keys, a few lookups ahead: the
 * slots a key of this hash starts at; later, once they are in, its key and
 * value. Each lookup of a large map otherwise waits on memory three times.
 */
void strmap_prefetch(const struct strmap *m, uint64_t hash);
void strmap_prefetch_entry(const struct strmap *m, uint64_t hash);
/* Inserts or replaces; -1 on allocation failure. */
int strmap_put(struct strmap *m, const void *key, size_t len, void *value);
/* Inserts key if absent: 0 when added, 1 when there already (its value kept), -1 on allocation failure. */
int strmap_add(struct strmap *m, const void *key, size_t len, void *value);
/*
 * Where key's value is, the key inserted with a NULL value if absent; NULL on
 * allocation failure. Valid until the map next changes: any put, ref, add or
 * del may move entries while the map grows, even one that finds nothing to do.
 */
void **strmap_ref(struct strmap *m, const void *key, size_t len);
void **strmap_ref_hashed(struct strmap *m, const void *key, size_t len, uint64_t hash);
/* Removes key; returns its value or NULL. The table keeps its size (strmap_shrink). */
void *strmap_del(struct strmap *m, const void *key, size_t len);
void *strmap_del_hashed(struct strmap *m, const void *key, size_t len, uint64_t hash);
/*
 * Gives back a table much larger than its entries (under 1/64 full), to a
 * quarter full at most. Its owner calls it where a burst has ended, not after
 * each delete: a map drained and refilled by every flush cycle would be rebuilt,
 * and its pages faulted in again, every cycle; one left at a burst's size makes
 * every walk over it cost the burst.
 */
void strmap_shrink(struct strmap *m);

/* Deletes the entries keep() says no to, in place: the table keeps its size (keys freed, values the caller's). */
void strmap_filter(struct strmap *m, int (*keep)(const struct strmap_slot *slot, void *ctx), void *ctx);

/*
 * strmap_filter over a stretch: up to `slots` slots from *pos on, *pos left
 * where the next call goes on. 1 while slots are left, 0 at the end. Between
 * calls the map may change: an entry it moves behind *pos is not looked at
 * in this sweep, one it moves ahead may be looked at twice.
 */
int strmap_filter_some(struct strmap *m, int (*keep)(const struct strmap_slot *slot, void *ctx), void *ctx,
		       size_t *pos, size_t slots);

/* Iteration, the map unchanged meanwhile: for (size_t i = 0; strmap_next(m, &i, &slot);) */
int strmap_next(const struct strmap *m, size_t *pos, const struct strmap_slot **slot);

/*
 * The slots whose keys sort after `after` (NULL: all), in byte order of their
 * keys: a new array of *n (NULL when out of memory), valid until the map changes.
 */
const struct strmap_slot **strmap_sorted(const struct strmap *m, const char *after, size_t after_len, size_t *n);

#endif
