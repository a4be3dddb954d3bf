/*
 * Which event ids the id index (DB_IDS) may hold: a Bloom filter in memory,
 * so that a new id, nearly every id ingest sees, is known new without a read
 * of the index. That read was a B-tree descent to a random leaf for every
 * event: 0.5-0.7 us of the writer's ~5 us per event at 2M ids, growing with
 * the index (docs/PERFORMANCE.md, nineteenth session).
 *
 * "Maybe" is always safe: the caller then reads the index. So the filter must
 * hold every id the index holds: its owner adds each id it writes there, and
 * fills the filter from the index in slices after opening (idfilter_ready
 * until then says no, and every id is read). Ids deleted from the index stay
 * in the filter until the next start. Blocked (each id's bits in one cache
 * line), in a chain of filters that each double the last's capacity; past
 * IDFILTER_MAX_BYTES, or out of memory, it gives up and says "maybe" to every
 * id until the daemon restarts.
 */
#ifndef HEARTH_STORE_IDFILTER_H
#define HEARTH_STORE_IDFILTER_H

#include <stddef.h>
#include <stdint.h>

#define IDFILTER_MAX_BYTES (64u << 20)  /* about 44M ids at 12 bits each */

struct idfilter;

struct idfilter *idfilter_new(void);
void idfilter_free(struct idfilter *f);
/* Remembers id; the filter gives up instead of failing. */
void idfilter_add(struct idfilter *f, const void *id, size_t len);
/* 0: id is surely not among those added; 1: it may be (or the filter is not ready, or gave up). */
int idfilter_may_have(const struct idfilter *f, const void *id, size_t len);
/* The same from the id's strmap_hash; and a cache hint for it, some lookups ahead. */
int idfilter_may_have_hashed(const struct idfilter *f, uint64_t hash);
void idfilter_prefetch(const struct idfilter *f, uint64_t hash);
/* Every id the index held is added: "surely not" can be said from here on. */
void idfilter_set_ready(struct idfilter *f);
int idfilter_ready(const struct idfilter *f);
/* It gave up (too many ids, or no memory): every answer is "maybe". */
int idfilter_gave_up(const struct idfilter *f);
size_t idfilter_bytes(const struct idfilter *f);

#endif
