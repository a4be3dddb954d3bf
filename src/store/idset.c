/* Event ids waiting for their flush; see idset.h. Linear probing, backward-shift deletion. */
#include <stdlib.h>
#include <string.h>

#include "hearth/strmap.h"
#include "idset.h"

#define MIN_CAP 1024
#define PREFIX  16      /* the bytes of a key kept in its idset_key */

void idset_init(struct idset *s)
{
	memset(s, 0, sizeof(*s));
	wbuf_init(&s->bytes);
}

void idset_free(struct idset *s)
{
	free(s->slots);
	wbuf_free(&s->bytes);
	idset_init(s);
}

void idset_empty(struct idset *s)
{
	if (s->count)
		memset(s->slots, 0, s->cap * sizeof(*s->slots));
	s->count = 0;
	wbuf_reset(&s->bytes);
}

/* Never 0, which marks an empty slot; from the key's strmap_hash. */
static uint64_t slot_hash(uint64_t hash)
{
	return hash | (1ULL << 63);
}

static struct idset_slot *find(const struct idset *s, const void *id, size_t len, uint64_t h)
{
	size_t mask = s->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct idset_slot *slot = &s->slots[i];
		if (!slot->hash || (slot->hash == h && slot->len == len &&
				    memcmp(s->bytes.data + slot->off, id, len) == 0))
			return slot;
	}
}

static struct idset_slot *empty_slot(const struct idset *s, uint64_t h)
{
	size_t mask = s->cap - 1, i = h & mask;

	while (s->slots[i].hash)
		i = (i + 1) & mask;
	return &s->slots[i];
}

static int grow(struct idset *s)
{
	size_t cap = s->cap ? s->cap * 2 : MIN_CAP;
	struct idset_slot *old = s->slots;
	size_t old_cap = s->cap;

	s->slots = calloc(cap, sizeof(*s->slots));
	if (!s->slots) {
		s->slots = old;
		return -1;
	}
	s->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].hash)
			*empty_slot(s, old[i].hash) = old[i];
	free(old);
	return 0;
}

int idset_reserve_empty(struct idset *s, size_t cap)
{
	if (s->count || cap <= s->cap)
		return 0;
	struct idset_slot *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
	return 0;
}

int idset_has(const struct idset *s, const void *id, size_t len)
{
	return idset_has_hashed(s, id, len, strmap_hash(id, len));
}

int idset_has_hashed(const struct idset *s, const void *id, size_t len, uint64_t hash)
{
	return s->count && find(s, id, len, slot_hash(hash))->hash != 0;
}

void idset_prefetch(const struct idset *s, uint64_t hash)
{
	if (s->cap)
		__builtin_prefetch(&s->slots[slot_hash(hash) & (s->cap - 1)]);
}

int idset_add(struct idset *s, const void *id, size_t len)
{
	return idset_add_hashed(s, id, len, strmap_hash(id, len));
}

int idset_add_hashed(struct idset *s, const void *id, size_t len, uint64_t hash)
{
	if ((s->count + 1) * 10 > s->cap * 7 && grow(s) < 0)
		return -1;
	uint64_t h = slot_hash(hash);
	struct idset_slot *slot = find(s, id, len, h);
	if (slot->hash)
		return 1;
	size_t off = s->bytes.len;
	if (off + len > UINT32_MAX || wbuf_reserve(&s->bytes, len) < 0)
		return -1;
	wbuf_put(&s->bytes, id, len);
	slot->hash = h;
	slot->off = (uint32_t)off;
	slot->len = (uint32_t)len;
	s->count++;
	return 0;
}

int idset_del(struct idset *s, const void *id, size_t len)
{
	if (!s->count)
		return 0;
	size_t mask = s->cap - 1;
	struct idset_slot *slot = find(s, id, len, slot_hash(strmap_hash(id, len)));
	if (!slot->hash)
		return 0;
	/* the key's bytes stay in the buffer until the set is emptied */
	size_t hole = (size_t)(slot - s->slots);
	s->slots[hole].hash = 0;
	s->count--;
	for (size_t i = (hole + 1) & mask; s->slots[i].hash; i = (i + 1) & mask) {
		size_t home = s->slots[i].hash & mask;
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			s->slots[hole] = s->slots[i];
			s->slots[i].hash = 0;
			hole = i;
		}
	}
	return 1;
}

static int key_cmp(const void *a, const void *b, void *ctx)
{
	const struct idset_key *x = a, *y = b;
	const struct idset *s = ctx;

	for (int i = 0; i < 2; i++)
		if (x->prefix[i] != y->prefix[i])
			return x->prefix[i] < y->prefix[i] ? -1 : 1;
	/* zero padding sorts a short key first, as byte order does: equal prefixes leave the rest */
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n > PREFIX ? memcmp(s->bytes.data + x->off + PREFIX, s->bytes.data + y->off + PREFIX, n - PREFIX) : 0;
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

struct idset_key *idset_sorted(const struct idset *s)
{
	struct idset_key *keys = malloc((s->count ? s->count : 1) * sizeof(*keys));
	size_t n = 0;

	if (!keys)
		return NULL;
	for (size_t i = 0; i < s->cap; i++) {
		const struct idset_slot *slot = &s->slots[i];
		if (!slot->hash)
			continue;
		uint8_t first[PREFIX] = { 0 };
		memcpy(first, s->bytes.data + slot->off, slot->len < PREFIX ? slot->len : PREFIX);
		keys[n].prefix[0] = be64_get(first);
		keys[n].prefix[1] = be64_get(first + 8);
		keys[n].off = slot->off;
		keys[n].len = slot->len;
		n++;
	}
	qsort_r(keys, n, sizeof(*keys), key_cmp, (void *)s);
	return keys;
}
