/* String-keyed hash map; see include/hearth/strmap.h. FNV-1a, power-of-two table. */
#include <stdlib.h>
#include <string.h>

#include "hearth/strmap.h"

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

void strmap_clear(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	strmap_init(m);
}

static struct strmap_slot *find(const struct strmap *m, const void *key, size_t len, uint64_t h)
{
	size_t mask = m->cap - 1;

	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct strmap_slot *s = &m->slots[i];
		if (!s->key || (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
			return s;
	}
}

void *strmap_get(const struct strmap *m, const void *key, size_t len)
{
	if (m->count == 0)
		return NULL;
	struct strmap_slot *s = find(m, key, len, strmap_hash(key, len));
	return s->key ? s->value : NULL;
}

static int rehash(struct strmap *m, size_t cap)
{
	struct strmap_slot *old = m->slots;
	size_t old_cap = m->cap;

	m->slots = calloc(cap, sizeof(*m->slots));
	if (!m->slots) {
		m->slots = old;
		return -1;
	}
	m->cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].key)
			*find(m, old[i].key, old[i].len, old[i].hash) = old[i];
	free(old);
	return 0;
}

/* key's slot, made (with no value) if absent; *had: it was there. NULL on allocation failure. */
static struct strmap_slot *slot_for(struct strmap *m, const void *key, size_t len, int *had)
{
	if ((m->count + 1) * 10 > m->cap * 7 && rehash(m, m->cap ? m->cap * 2 : 64) < 0)
		return NULL;
	uint64_t h = strmap_hash(key, len);
	struct strmap_slot *s = find(m, key, len, h);
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
	struct strmap_slot *s = slot_for(m, key, len, &had);

	if (!s)
		return -1;
	s->value = value;
	return 0;
}

void **strmap_ref(struct strmap *m, const void *key, size_t len)
{
	int had;
	struct strmap_slot *s = slot_for(m, key, len, &had);

	if (!s)
		return NULL;
	if (!had)
		s->value = NULL;
	return &s->value;
}

int strmap_add(struct strmap *m, const void *key, size_t len, void *value)
{
	int had;
	struct strmap_slot *s = slot_for(m, key, len, &had);

	if (!s)
		return -1;
	if (!had)
		s->value = value;
	return had;
}

/* Backward-shift deletion keeps probe chains unbroken without tombstones. */
static void shift_back(struct strmap *m, size_t hole)
{
	size_t mask = m->cap - 1;

	for (size_t i = (hole + 1) & mask; m->slots[i].key; i = (i + 1) & mask) {
		size_t home = m->slots[i].hash & mask;
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			m->slots[hole] = m->slots[i];
			m->slots[i].key = NULL;
			hole = i;
		}
	}
}

void *strmap_del(struct strmap *m, const void *key, size_t len)
{
	if (m->count == 0)
		return NULL;
	struct strmap_slot *s = find(m, key, len, strmap_hash(key, len));
	if (!s->key)
		return NULL;
	void *value = s->value;
	free(s->key);
	s->key = NULL;
	m->count--;
	shift_back(m, (size_t)(s - m->slots));
	return value;
}

void strmap_shrink(struct strmap *m)
{
	size_t cap = m->cap;

	if (cap <= 64 || m->count * 64 >= cap)
		return;
	while (cap > 64 && m->count * 4 < cap / 2)
		cap /= 2;
	rehash(m, cap); /* a failure keeps the larger table, which still works */
}

void strmap_filter(struct strmap *m, int (*keep)(const struct strmap_slot *slot, void *ctx), void *ctx)
{
	/*
	 * A shift can only bring into slot i an entry from further along its
	 * chain, so slot i is looked at again; one that wraps to the front was
	 * seen already and is only looked at twice.
	 */
	for (size_t i = 0; i < m->cap;) {
		struct strmap_slot *s = &m->slots[i];
		if (!s->key || keep(s, ctx)) {
			i++;
			continue;
		}
		free(s->key);
		s->key = NULL;
		m->count--;
		shift_back(m, i);
	}
}

int strmap_next(const struct strmap *m, size_t *pos, const struct strmap_slot **slot)
{
	if (m->count == 0)
		return 0;
	while (*pos < m->cap) {
		const struct strmap_slot *s = &m->slots[(*pos)++];
		if (s->key) {
			*slot = s;
			return 1;
		}
	}
	return 0;
}
