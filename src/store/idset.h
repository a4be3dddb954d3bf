/*
 * Event ids waiting for their flush into the id index: a set whose keys live
 * back to back in one buffer it owns.
 *
 * Every accepted event puts its id here and every flush takes them all, so
 * under ingest this is the busiest table the writer has. A key per malloc, a
 * copy of each for the flush and a deletion of each after it cost the writer
 * a sixth of its time (docs/PERFORMANCE.md, eleventh session); here a flush
 * takes the whole set, sorted in place, and empties it in one go, capacity
 * kept for the next.
 */
#ifndef HEARTH_STORE_IDSET_H
#define HEARTH_STORE_IDSET_H

#include <stddef.h>
#include <stdint.h>

#include "hearth/codec.h"

struct idset_slot {
	uint64_t hash;                  /* 0: empty */
	uint32_t off, len;              /* the key in idset.bytes */
};

/*
 * A key in sorted order: its first 16 bytes as two big-endian numbers, so that
 * most comparisons never read the key (ids like b000012345 share their first 8).
 */
struct idset_key {
	uint64_t prefix[2];
	uint32_t off, len;
};

struct idset {
	struct idset_slot *slots;
	size_t cap, count;
	struct wbuf bytes;
};

void idset_init(struct idset *s);
void idset_free(struct idset *s);
/* No keys, the table's capacity kept. */
void idset_empty(struct idset *s);
/*
 * An empty set's table made cap slots (a power of two) at once, when smaller:
 * grown by doubling, it would rehash and fault in every size on the way.
 */
int idset_reserve_empty(struct idset *s, size_t cap);
/* 1: present already; 0: added; -1: out of memory. */
int idset_add(struct idset *s, const void *id, size_t len);
int idset_has(const struct idset *s, const void *id, size_t len);
/* The same with the id's strmap_hash, computed once for the other tables it is looked up in. */
int idset_add_hashed(struct idset *s, const void *id, size_t len, uint64_t hash);
int idset_has_hashed(const struct idset *s, const void *id, size_t len, uint64_t hash);
/* A cache hint, some lookups ahead: the slot an id of this strmap_hash starts at. */
void idset_prefetch(const struct idset *s, uint64_t hash);
/* 1: removed; 0: it was not there. */
int idset_del(struct idset *s, const void *id, size_t len);
/* The keys in byte order, a new array of s->count (NULL when out of memory); valid until s changes. */
struct idset_key *idset_sorted(const struct idset *s);

static inline const char *idset_key_bytes(const struct idset *s, const struct idset_key *k)
{
	return (const char *)s->bytes.data + k->off;
}

#endif
