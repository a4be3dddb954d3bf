/* String-keyed hash map; see include/hearth/strmap.h. FNV-1a, power-of-two tables. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/strmap.h"

/*
 * Old slots an insert or delete moves over at least while the map grows. At 16 the old
 * table (C slots, at most 0.7 C entries) is empty after C/16 inserts, when
 * the new one (2 C) holds at most 0.77 C: far from its own growth at 1.4 C.
 */
#define MOVE_SLOTS 16

uint64_t strmap_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

void strmap_init(struct strmap *m)
{
	memset(m, 0, sizeof(*m));
}

static void free_table(struct strmap_slot *slots, size_t cap)
{
	for (size_t i = 0; i < cap; i++)
		free(slots[i].key);
	free(slots);
}

void strmap_clear(struct strmap *m)
{
	free_table(m->slots, m->cap);
	free_table(m->old, m->old_cap);
	strmap_init(m);
}

/* key's slot in a table, or the empty slot where it would go. */
static struct strmap_slot *probe(struct strmap_slot *slots, size_t cap, const void *key, size_t len, uint64_t h)
{
	size_t mask = cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct strmap_slot *s = &slots[i];
		if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
			return s;
	}
}

/* key's slot in the old table while the map grows, or NULL. */
static struct strmap_slot *probe_old(const struct strmap *m, const void *key, size_t len, uint64_t h)
{
	if (!m->old_count)
		return NULL;
	struct strmap_slot *s = probe(m->old, m->old_cap, key, len, h);
	return s->key ? s : NULL;
}

void *strmap_get(const struct strmap *m, const void *key, size_t len)
{
	return strmap_get_hashed(m, key, len, strmap_hash(key, len));
}

void *strmap_get_hashed(const struct strmap *m, const void *key, size_t len, uint64_t hash)
{
	if (m->count == 0)
		return NULL;
	struct strmap_slot *s = probe(m->slots, m->cap, key, len, hash);
	if (!s->key)
		s = probe_old(m, key, len, hash);
	return s && s->key ? s->value : NULL;
}

void strmap_prefetch(const struct strmap *m, uint64_t hash)
{
	if (m->count == 0)
		return;
	__builtin_prefetch(&m->slots[hash & (m->cap - 1)]);
	if (m->old_count)
		__builtin_prefetch(&m->old[hash & (m->old_cap - 1)]);
}

void strmap_prefetch_entry(const struct strmap *m, uint64_t hash)
{
	if (m->count == 0)
		return;
	/* the home slot only: at the load the map keeps, most keys are there */
	const struct strmap_slot *s = &m->slots[hash & (m->cap - 1)];
	if (s->key && s->hash == hash) {
		__builtin_prefetch(s->key);
		__builtin_prefetch(s->value);
	}
}

static void old_done(struct strmap *m)
{
	free(m->old);
	m->old = NULL;
	m->old_cap = m->old_pos = m->old_left = m->old_count = 0;
}

/*
 * Moves whole probe clusters of the old table, at least want slots of it.
 * The cursor stops only on an empty slot, so every entry left in the old
 * table has its whole chain from its home slot there: probes of the old
 * table stay right, and deletions' backward shifts never leave a cluster.
 */
static void move_some(struct strmap *m, size_t want)
{
	size_t mask = m->old_cap - 1;

	for (size_t seen = 0; m->old_left && m->old_count; seen++) {
		struct strmap_slot *s = &m->old[m->old_pos];
		if (!s->key && seen >= want)
			break;
		if (s->key) {
			*probe(m->slots, m->cap, s->key, s->len, s->hash) = *s;
			s->key = NULL;
			m->old_count--;
		}
		m->old_pos = (m->old_pos + 1) & mask;
		m->old_left--;
	}
	if (m->old && (!m->old_left || !m->old_count))
		old_done(m);
}

/* Twice the table; its entries move over at the inserts that follow. */
static int grow(struct strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	struct strmap_slot *slots;

	if (m->old)
		move_some(m, SIZE_MAX); /* by MOVE_SLOTS's sizing it is empty already */
	slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return -1;
	if (m->count) {
		m->old = m->slots;
		m->old_cap = m->old_left = m->cap;
		m->old_count = m->count;
		/* a table at most 0.7 full has an empty slot: a cluster boundary to start from */
		while (m->old[m->old_pos].key)
			m->old_pos++;
	} else {
		free(m->slots);
	}
	m->slots = slots;
	m->cap = cap;
	return 0;
}

/* Both tables' entries into one new table of cap, at once: for shrinking, where few entries move. */
static int rehash(struct strmap *m, size_t cap)
{
	struct strmap_slot *slots = calloc(cap, sizeof(*slots));
	struct strmap_slot *from[2] = { m->slots, m->old };
	size_t from_cap[2] = { m->cap, m->old_cap };

	if (!slots)
		return -1;
	for (int t = 0; t < 2; t++)
		for (size_t i = 0; i < from_cap[t]; i++)
			if (from[t][i].key)
				*probe(slots, cap, from[t][i].key, from[t][i].len, from[t][i].hash) = from[t][i];
	free(m->slots);
	m->slots = slots;
	m->cap = cap;
	old_done(m);
	return 0;
}

/* key's slot, made (with no value) if absent; *had: it was there. NULL on allocation failure. */
static struct strmap_slot *slot_for(struct strmap *m, const void *key, size_t len, uint64_t h, int *had)
{
	if (m->old)
		move_some(m, MOVE_SLOTS);
	if ((m->count + 1) * 10 > m->cap * 7 && grow(m) < 0)
		return NULL;
	struct strmap_slot *s = probe(m->slots, m->cap, key, len, h);
	struct strmap_slot *old = s->key ? NULL : probe_old(m, key, len, h);
	if (old) {
		*had = 1;
		return old;
	}
	*had = s->key != NULL;
	if (!s->key) {
		s->key = malloc(len + 1);
		if (!s->key)
			return NULL;
		memcpy(s->key, key, len);
		s->key[len] = '\0';
		s->len = len;
		s->hash = h;
		m->count++;
	}
	return s;
}

int strmap_put(struct strmap *m, const void *key, size_t len, void *value)
{
	int had;
	struct strmap_slot *s = slot_for(m, key, len, strmap_hash(key, len), &had);

	if (!s)
		return -1;
	s->value = value;
	return 0;
}

void **strmap_ref(struct strmap *m, const void *key, size_t len)
{
	return strmap_ref_hashed(m, key, len, strmap_hash(key, len));
}

void **strmap_ref_hashed(struct strmap *m, const void *key, size_t len, uint64_t hash)
{
	int had;
	struct strmap_slot *s = slot_for(m, key, len, hash, &had);

	if (!s)
		return NULL;
	if (!had)
		s->value = NULL;
	return &s->value;
}

int strmap_add(struct strmap *m, const void *key, size_t len, void *value)
{
	int had;
	struct strmap_slot *s = slot_for(m, key, len, strmap_hash(key, len), &had);

	if (!s)
		return -1;
	if (!had)
		s->value = value;
	return had;
}

/* Backward-shift deletion keeps probe chains unbroken without tombstones. */
static void shift_back(struct strmap_slot *slots, size_t cap, size_t hole)
{
	size_t mask = cap - 1;

	for (size_t i = (hole + 1) & mask; slots[i].key; i = (i + 1) & mask) {
		size_t home = slots[i].hash & mask;
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			slots[hole] = slots[i];
			slots[i].key = NULL;
			hole = i;
		}
	}
}

/* Empties slot s of a table; its value is the caller's. */
static void remove_slot(struct strmap_slot *slots, size_t cap, struct strmap_slot *s)
{
	free(s->key);
	s->key = NULL;
	shift_back(slots, cap, (size_t)(s - slots));
}

void *strmap_del(struct strmap *m, const void *key, size_t len)
{
	return strmap_del_hashed(m, key, len, strmap_hash(key, len));
}

void *strmap_del_hashed(struct strmap *m, const void *key, size_t len, uint64_t h)
{
	if (m->count == 0)
		return NULL;
	if (m->old)
		move_some(m, MOVE_SLOTS); /* a map draining after a burst gives its old table back too */
	struct strmap_slot *s = probe(m->slots, m->cap, key, len, h);
	void *value;

	if (s->key) {
		value = s->value;
		remove_slot(m->slots, m->cap, s);
	} else if ((s = probe_old(m, key, len, h))) {
		value = s->value;
		remove_slot(m->old, m->old_cap, s);
		if (--m->old_count == 0)
			old_done(m);
	} else {
		return NULL;
	}
	m->count--;
	return value;
}

void strmap_shrink(struct strmap *m)
{
	size_t cap = m->cap;

	/* a map in the middle of a move, not shrunk, keeps moving at its own pace */
	if (cap <= 64 || m->count * 64 >= cap)
		return;
	while (cap > 64 && m->count * 4 < cap / 2)
		cap /= 2;
	rehash(m, cap); /* a failure keeps the larger table, which still works */
}

int strmap_filter_some(struct strmap *m, int (*keep)(const struct strmap_slot *slot, void *ctx), void *ctx,
		       size_t *pos, size_t slots)
{
	size_t end = slots > SIZE_MAX - *pos ? SIZE_MAX : *pos + slots, old_cap = m->old_cap;

	while (*pos < end && *pos < m->old_cap + m->cap) {
		int in_old = *pos < m->old_cap;
		struct strmap_slot *table = in_old ? m->old : m->slots;
		size_t cap = in_old ? m->old_cap : m->cap;
		struct strmap_slot *s = &table[in_old ? *pos : *pos - m->old_cap];
		/*
		 * A shift can only bring into this slot an entry from further along
		 * its chain, so the slot is looked at again; one that wraps to the
		 * table's front was seen already and is only looked at twice.
		 */
		if (!s->key || keep(s, ctx)) {
			++*pos;
			continue;
		}
		remove_slot(table, cap, s);
		m->count--;
		m->old_count -= in_old;
	}
	if (m->old && !m->old_count) {
		old_done(m);
		*pos = *pos > old_cap ? *pos - old_cap : 0; /* the same place in the table that is left */
	}
	return *pos < m->old_cap + m->cap;
}

void strmap_filter(struct strmap *m, int (*keep)(const struct strmap_slot *slot, void *ctx), void *ctx)
{
	size_t pos = 0;

	strmap_filter_some(m, keep, ctx, &pos, SIZE_MAX);
}

int strmap_next(const struct strmap *m, size_t *pos, const struct strmap_slot **slot)
{
	if (m->count == 0)
		return 0;
	while (*pos < m->old_cap + m->cap) {
		size_t i = (*pos)++;
		const struct strmap_slot *s = i < m->old_cap ? &m->old[i] : &m->slots[i - m->old_cap];
		if (s->key) {
			*slot = s;
			return 1;
		}
	}
	return 0;
}

/*
 * A slot being sorted, with its key's first 16 bytes as two big-endian
 * numbers: most comparisons then read neither the slot nor its key (the
 * pointers' cache misses were most of a sort of 200,000 customers).
 */
struct sorting {
	uint64_t prefix[2];
	const struct strmap_slot *slot;
};

static uint64_t key_word(const char *key, size_t len, size_t off)
{
	uint64_t w = 0;

	for (size_t i = off; i < off + 8; i++)
		w = w << 8 | (i < len ? (uint8_t)key[i] : 0);
	return w;
}

static int key_order(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

static int sorting_cmp(const void *pa, const void *pb)
{
	const struct sorting *x = pa, *y = pb;

	for (int i = 0; i < 2; i++)
		if (x->prefix[i] != y->prefix[i])
			return x->prefix[i] < y->prefix[i] ? -1 : 1;
	/* zero padding sorts a short key first, as byte order does: equal prefixes leave the rest */
	return key_order(x->slot->key, x->slot->len, y->slot->key, y->slot->len);
}

const struct strmap_slot **strmap_sorted(const struct strmap *m, const char *after, size_t after_len, size_t *n)
{
	struct sorting *sorting = malloc((m->count ? m->count : 1) * sizeof(*sorting));
	const struct strmap_slot **list = malloc((m->count ? m->count : 1) * sizeof(*list));
	const struct strmap_slot *slot;

	*n = 0;
	if (!sorting || !list) {
		free(sorting);
		free(list);
		return NULL;
	}
	for (size_t i = 0; strmap_next(m, &i, &slot);)
		if (!after || key_order(slot->key, slot->len, after, after_len) > 0)
			sorting[(*n)++] = (struct sorting){ { key_word(slot->key, slot->len, 0),
							      key_word(slot->key, slot->len, 8) }, slot };
	qsort(sorting, *n, sizeof(*sorting), sorting_cmp);
	for (size_t i = 0; i < *n; i++)
		list[i] = sorting[i].slot;
	free(sorting);
	return list;
}
