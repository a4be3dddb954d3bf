/*
 * strmap.h: the open-addressing byte-string map behind the store's pending
 * state (dirty customers, ids not yet indexed).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/strmap.h"

#define MANY 10000

static size_t key_of(size_t i, char *buf, size_t size)
{
	return (size_t)snprintf(buf, size, "customer-%zu", i);
}

static void *value_of(size_t i)
{
	return (void *)(uintptr_t)(i + 1); /* never NULL */
}

static void test_empty(void **state)
{
	struct strmap m;

	(void)state;
	strmap_init(&m);
	assert_null(strmap_get(&m, "a", 1));
	assert_null(strmap_del(&m, "a", 1));
	size_t pos = 0;
	const struct strmap_slot *slot;
	assert_int_equal(strmap_next(&m, &pos, &slot), 0);
	strmap_clear(&m);
	strmap_clear(&m);
}

static void test_put_get_replace_del(void **state)
{
	struct strmap m;
	int a, b, c;

	(void)state;
	strmap_init(&m);
	assert_int_equal(strmap_put(&m, "alpha", 5, &a), 0);
	assert_int_equal(strmap_put(&m, "beta", 4, &b), 0);
	assert_int_equal(m.count, 2);
	assert_ptr_equal(strmap_get(&m, "alpha", 5), &a);
	assert_ptr_equal(strmap_get(&m, "beta", 4), &b);
	/* length matters, not the NUL: "alph" and "alphabet" are other keys */
	assert_null(strmap_get(&m, "alph", 4));
	assert_null(strmap_get(&m, "alphabet", 8));
	assert_ptr_equal(strmap_get(&m, "alphabet", 5), &a);
	/* adding keeps what is there, and says so */
	assert_int_equal(strmap_add(&m, "alpha", 5, &c), 1);
	assert_ptr_equal(strmap_get(&m, "alpha", 5), &a);
	assert_int_equal(strmap_add(&m, "delta", 5, &c), 0);
	assert_ptr_equal(strmap_get(&m, "delta", 5), &c);
	assert_int_equal(m.count, 3);
	assert_ptr_equal(strmap_del(&m, "delta", 5), &c);
	/* a reference: to the value there, or to a new key's NULL */
	void **ref = strmap_ref(&m, "alpha", 5);
	assert_non_null(ref);
	assert_ptr_equal(*ref, &a);
	ref = strmap_ref(&m, "epsilon", 7);
	assert_non_null(ref);
	assert_null(*ref);
	*ref = &b;
	assert_ptr_equal(strmap_get(&m, "epsilon", 7), &b);
	/* by a hash the caller computed: the same slot */
	assert_ptr_equal(strmap_ref_hashed(&m, "epsilon", 7, strmap_hash("epsilon", 7)), strmap_ref(&m, "epsilon", 7));
	assert_ptr_equal(strmap_del(&m, "epsilon", 7), &b);
	/* replacing keeps the count */
	assert_int_equal(strmap_put(&m, "alpha", 5, &c), 0);
	assert_int_equal(m.count, 2);
	assert_ptr_equal(strmap_get(&m, "alpha", 5), &c);
	/* keys are copied: the caller's buffer may change */
	char buf[8] = "gamma";
	assert_int_equal(strmap_put(&m, buf, 5, &a), 0);
	memcpy(buf, "xxxxx", 5);
	assert_ptr_equal(strmap_get(&m, "gamma", 5), &a);
	/* binary keys with embedded NULs */
	assert_int_equal(strmap_put(&m, "k\0a", 3, &a), 0);
	assert_int_equal(strmap_put(&m, "k\0b", 3, &b), 0);
	assert_ptr_equal(strmap_get(&m, "k\0a", 3), &a);
	assert_ptr_equal(strmap_get(&m, "k\0b", 3), &b);
	/* the empty key is a key */
	assert_int_equal(strmap_put(&m, "", 0, &c), 0);
	assert_ptr_equal(strmap_get(&m, "", 0), &c);
	assert_int_equal(m.count, 6);

	assert_ptr_equal(strmap_del(&m, "beta", 4), &b);
	assert_null(strmap_get(&m, "beta", 4));
	assert_null(strmap_del(&m, "beta", 4));
	assert_int_equal(m.count, 5);
	assert_ptr_equal(strmap_get(&m, "alpha", 5), &c);
	strmap_clear(&m);
	assert_int_equal(m.count, 0);
	assert_null(strmap_get(&m, "alpha", 5));
}

static void test_many_keys_rehash_and_delete_half(void **state)
{
	struct strmap m;
	char key[32];
	size_t len, cap_after_small;

	(void)state;
	strmap_init(&m);
	assert_int_equal(strmap_put(&m, "x", 1, value_of(0)), 0);
	cap_after_small = m.cap;
	assert_non_null(strmap_del(&m, "x", 1));
	for (size_t i = 0; i < MANY; i++) {
		len = key_of(i, key, sizeof(key));
		assert_int_equal(strmap_put(&m, key, len, value_of(i)), 0);
	}
	assert_int_equal(m.count, MANY);
	assert_true(m.cap > cap_after_small);       /* it rehashed */
	assert_true(m.count * 10 <= m.cap * 7);     /* and keeps its load factor */
	for (size_t i = 0; i < MANY; i++) {
		len = key_of(i, key, sizeof(key));
		if (strmap_get(&m, key, len) != value_of(i))
			fail_msg("key %s lost after rehash", key);
	}
	/* delete every other key: backward-shift deletion must keep the chains whole */
	for (size_t i = 0; i < MANY; i += 2) {
		len = key_of(i, key, sizeof(key));
		if (strmap_del(&m, key, len) != value_of(i))
			fail_msg("deleting %s returned the wrong value", key);
	}
	assert_int_equal(m.count, MANY / 2);
	for (size_t i = 0; i < MANY; i++) {
		len = key_of(i, key, sizeof(key));
		void *got = strmap_get(&m, key, len);
		if (i % 2 == 0 && got)
			fail_msg("deleted key %s still found", key);
		if (i % 2 == 1 && got != value_of(i))
			fail_msg("remaining key %s not found after deletes", key);
	}
	/* iteration visits each remaining key exactly once */
	size_t seen = 0, pos = 0, sum = 0;
	const struct strmap_slot *slot;
	while (strmap_next(&m, &pos, &slot)) {
		size_t i = (size_t)(uintptr_t)slot->value - 1;
		assert_int_equal(i % 2, 1);
		len = key_of(i, key, sizeof(key));
		assert_int_equal(slot->len, len);
		assert_memory_equal(slot->key, key, len);
		seen++;
		sum += i;
	}
	assert_int_equal(seen, MANY / 2);
	assert_int_equal(sum, (size_t)(MANY / 2) * (MANY / 2)); /* 1 + 3 + ... + (MANY-1) */
	/* deleted keys can come back */
	for (size_t i = 0; i < MANY; i += 2) {
		len = key_of(i, key, sizeof(key));
		assert_int_equal(strmap_put(&m, key, len, value_of(i)), 0);
	}
	assert_int_equal(m.count, MANY);
	for (size_t i = 0; i < MANY; i++) {
		len = key_of(i, key, sizeof(key));
		if (strmap_get(&m, key, len) != value_of(i))
			fail_msg("key %s wrong after re-insert", key);
	}
	strmap_clear(&m);
}

static void xorshift(uint64_t *rng)
{
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
}

/* Random interleaving of puts and deletes checked against a plain array. */
static void test_random_ops_match_model(void **state)
{
	enum { KEYS = 3000, OPS = 200000 };
	static void *model[KEYS];
	struct strmap m;
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	size_t live = 0;
	char key[32];

	(void)state;
	memset(model, 0, sizeof(model));
	strmap_init(&m);
	for (size_t op = 0; op < OPS; op++) {
		xorshift(&rng);
		size_t k = (size_t)(rng % KEYS);
		size_t len = key_of(k, key, sizeof(key));
		if ((rng >> 32) % 3 == 0) {
			void *got = strmap_del(&m, key, len);
			if (got != model[k])
				fail_msg("op %zu: del %s gave %p, model %p", op, key, got, model[k]);
			live -= model[k] != NULL;
			model[k] = NULL;
		} else {
			void *v = (void *)(uintptr_t)(op + 1);
			assert_int_equal(strmap_put(&m, key, len, v), 0);
			live += model[k] == NULL;
			model[k] = v;
		}
		assert_int_equal(m.count, live);
	}
	for (size_t k = 0; k < KEYS; k++) {
		size_t len = key_of(k, key, sizeof(key));
		if (strmap_get(&m, key, len) != model[k])
			fail_msg("final state of %s differs from the model", key);
	}
	strmap_clear(&m);
}

/* A burst must not leave a huge table behind once its owner shrinks it: a tick iterates the pending customers. */
static void test_shrinks_after_a_burst(void **state)
{
	struct strmap m;
	const struct strmap_slot *slot;
	char key[32];
	size_t seen = 0;

	(void)state;
	strmap_init(&m);
	for (int i = 0; i < 100000; i++) {
		int n = snprintf(key, sizeof(key), "C%07d", i);
		assert_int_equal(strmap_put(&m, key, (size_t)n, (void *)(intptr_t)(i + 1)), 0);
	}
	assert_true(m.cap >= 100000);
	for (int i = 1; i < 100000; i++) {
		int n = snprintf(key, sizeof(key), "C%07d", i);
		assert_ptr_equal(strmap_del(&m, key, (size_t)n), (void *)(intptr_t)(i + 1));
	}
	assert_int_equal(m.count, 1);
	assert_true(m.cap >= 100000);               /* deletes keep the table */
	strmap_shrink(&m);
	assert_true(m.cap <= 256);
	assert_ptr_equal(strmap_get(&m, "C0000000", 8), (void *)(intptr_t)1);
	for (size_t i = 0; strmap_next(&m, &i, &slot);)
		seen++;
	assert_int_equal(seen, 1);
	strmap_clear(&m);
}

/* A map drained to a tenth and refilled, as pending state is by every flush cycle, keeps its table. */
static void test_keeps_its_table_through_a_flush_cycle(void **state)
{
	struct strmap m;
	char key[32];
	size_t cap;

	(void)state;
	strmap_init(&m);
	for (int i = 0; i < 100000; i++) {
		int n = snprintf(key, sizeof(key), "C%07d", i);
		assert_int_equal(strmap_put(&m, key, (size_t)n, (void *)(intptr_t)(i + 1)), 0);
	}
	cap = m.cap;
	for (int i = 0; i < 90000; i++) {
		int n = snprintf(key, sizeof(key), "C%07d", i);
		assert_ptr_equal(strmap_del(&m, key, (size_t)n), (void *)(intptr_t)(i + 1));
	}
	assert_int_equal(m.cap, cap);
	strmap_shrink(&m);                          /* a tenth full is not a burst's leftover */
	assert_int_equal(m.cap, cap);
	for (int i = 0; i < 90000; i++) {
		int n = snprintf(key, sizeof(key), "D%07d", i);
		assert_int_equal(strmap_put(&m, key, (size_t)n, (void *)(intptr_t)(i + 1)), 0);
	}
	assert_int_equal(m.cap, cap);
	assert_int_equal(m.count, 100000);
	assert_ptr_equal(strmap_get(&m, "C0099999", 8), (void *)(intptr_t)100000);
	strmap_clear(&m);
}

static int keep_odd(const struct strmap_slot *slot, void *ctx)
{
	(void)ctx;
	return ((uintptr_t)slot->value - 1) % 2 == 1;
}

/* Filtering in place deletes exactly the refused entries, keeps the table, and every kept key stays reachable. */
static void test_filter_in_place(void **state)
{
	struct strmap m;
	char key[32];
	size_t n = 5000, cap;

	(void)state;
	strmap_init(&m);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(strmap_put(&m, key, key_of(i, key, sizeof(key)), value_of(i)), 0);
	cap = m.cap;
	strmap_filter(&m, keep_odd, NULL);
	assert_int_equal(m.cap, cap);
	assert_int_equal(m.count, n / 2);
	for (size_t i = 0; i < n; i++) {
		void *v = strmap_get(&m, key, key_of(i, key, sizeof(key)));
		if (i % 2)
			assert_ptr_equal(v, value_of(i));
		else
			assert_null(v);
	}
	size_t pos = 0, seen = 0;
	const struct strmap_slot *slot;
	while (strmap_next(&m, &pos, &slot))
		seen++;
	assert_int_equal(seen, n / 2);
	strmap_clear(&m);
}

/*
 * A doubling table moves its entries over at the inserts that follow, a few
 * clusters each: no insert carries the whole move (45-48 ms at 91,750 entries
 * in a loop slice before), and every key stays reachable while both tables hold some.
 */
static void test_grows_a_little_at_each_insert(void **state)
{
	enum { KEYS = 200000 };
	struct strmap m;
	char key[32];
	size_t most_moved = 0, inserts_while_growing = 0, largest_old = 0;

	(void)state;
	strmap_init(&m);
	for (size_t i = 0; i < KEYS; i++) {
		size_t in_old = m.old_count, cap = m.cap, len = key_of(i, key, sizeof(key));
		assert_int_equal(strmap_put(&m, key, len, value_of(i)), 0);
		/* the insert that doubles the table moves nothing yet: all its entries wait in the old one */
		if (m.cap != cap && cap) {
			assert_int_equal(m.old_cap, cap);
			assert_int_equal(m.old_count, m.count - 1);
			largest_old = m.old_count;
			for (size_t k = 0; k <= i; k++)
				if (strmap_get(&m, key, key_of(k, key, sizeof(key))) != value_of(k))
					fail_msg("key %s unreachable when the table doubled at %zu", key, i);
		} else if (in_old) {
			size_t moved = in_old - m.old_count;
			most_moved = moved > most_moved ? moved : most_moved;
			inserts_while_growing++;
		}
		if (m.old_count && i % 1000 == 0)
			for (size_t k = 0; k <= i; k++)
				if (strmap_get(&m, key, key_of(k, key, sizeof(key))) != value_of(k))
					fail_msg("key %s unreachable while growing at %zu", key, i);
	}
	assert_true(largest_old >= KEYS / 3);
	assert_true(inserts_while_growing > 1000);
	/* a few clusters per insert, against the tens of thousands a whole move carried */
	assert_true(most_moved > 0);
	assert_true(most_moved <= 256);
	strmap_clear(&m);
}

/*
 * A lookup with the key's hash given finds what strmap_get finds, in both
 * tables while the map grows; the cache hints read nothing they should not
 * (an empty map, a growing one, hashes of absent keys).
 */
static void test_lookups_by_hash_and_hints_while_growing(void **state)
{
	enum { KEYS = 50000 };
	struct strmap m;
	char key[32];
	size_t checked_growing = 0;

	(void)state;
	strmap_init(&m);
	strmap_prefetch(&m, 12345);
	strmap_prefetch_entry(&m, 12345);
	assert_null(strmap_get_hashed(&m, "a", 1, strmap_hash("a", 1)));
	for (size_t i = 0; i < KEYS; i++) {
		size_t len = key_of(i, key, sizeof(key));
		assert_int_equal(strmap_put(&m, key, len, value_of(i)), 0);
		if (i % 499 || !m.old_count)
			continue;
		checked_growing++;
		for (size_t k = 0; k <= i + 10; k++) {
			uint64_t h;
			len = key_of(k, key, sizeof(key));
			h = strmap_hash(key, len);
			strmap_prefetch(&m, h);
			strmap_prefetch_entry(&m, h);
			assert_ptr_equal(strmap_get_hashed(&m, key, len, h), k <= i ? value_of(k) : NULL);
			assert_ptr_equal(strmap_get_hashed(&m, key, len, h), strmap_get(&m, key, len));
		}
	}
	assert_true(checked_growing > 5);
	/* deleted by hash, every other key: the rest stay */
	for (size_t k = 0; k < KEYS; k += 2) {
		size_t len = key_of(k, key, sizeof(key));
		assert_ptr_equal(strmap_del_hashed(&m, key, len, strmap_hash(key, len)), value_of(k));
		assert_null(strmap_del_hashed(&m, key, len, strmap_hash(key, len)));
	}
	assert_int_equal(m.count, KEYS / 2);
	for (size_t k = 0; k < KEYS; k++) {
		size_t len = key_of(k, key, sizeof(key));
		assert_ptr_equal(strmap_get(&m, key, len), k % 2 ? value_of(k) : NULL);
	}
	strmap_clear(&m);
}

static int keep_unless_97th(const struct strmap_slot *slot, void *ctx)
{
	(void)ctx;
	return ((uintptr_t)slot->value - 1) % 97 != 0;
}

/*
 * Puts, deletes, filters, iterations and shrinks over a growing key space, so
 * that they land while the map moves from one table to the next; checked
 * against a plain array.
 */
static void test_changes_while_growing_match_model(void **state)
{
	enum { KEYS = 60000, OPS = 400000 };
	static uintptr_t model[KEYS];       /* op + 1 that put it, 0: absent */
	struct strmap m;
	uint64_t rng = 0x2545f4914f6cdd1dULL;
	size_t live = 0, checked_while_growing = 0;
	char key[32];

	(void)state;
	memset(model, 0, sizeof(model));
	strmap_init(&m);
	for (size_t op = 0; op < OPS; op++) {
		xorshift(&rng);
		size_t span = op / 4 + 64 < KEYS ? op / 4 + 64 : KEYS;
		size_t k = (size_t)(rng % span);
		size_t len = key_of(k, key, sizeof(key));
		if ((rng >> 32) % 3 == 0) {
			if ((uintptr_t)strmap_del(&m, key, len) != model[k])
				fail_msg("op %zu: del %s differs from the model", op, key);
			live -= model[k] != 0;
			model[k] = 0;
		} else {
			/* values keep k's residue mod 97 so the filter below can be checked */
			uintptr_t v = (uintptr_t)(op / 97 * 97 + k % 97 + 1);
			assert_int_equal(strmap_put(&m, key, len, (void *)v), 0);
			live += model[k] == 0;
			model[k] = v;
		}
		assert_int_equal(m.count, live);
		if (op % 9973 == 0 || (m.old_count && op % 997 == 0)) {
			size_t seen = 0, pos = 0;
			const struct strmap_slot *slot;
			checked_while_growing += m.old_count != 0;
			while (strmap_next(&m, &pos, &slot)) {
				char name[32];
				size_t n;
				if (sscanf(slot->key, "customer-%zu", &n) != 1 || n >= KEYS || model[n] != (uintptr_t)slot->value)
					fail_msg("op %zu: iteration gave %s, not in the model", op, slot->key);
				assert_int_equal(slot->len, key_of(n, name, sizeof(name)));
				seen++;
			}
			assert_int_equal(seen, live);
		}
		if (op % 50021 == 50020) {
			strmap_filter(&m, keep_unless_97th, NULL);
			for (size_t i = 0; i < KEYS; i++)
				if (model[i] && (model[i] - 1) % 97 == 0) {
					model[i] = 0;
					live--;
				}
			assert_int_equal(m.count, live);
		}
	}
	assert_true(checked_while_growing > 0);
	for (size_t k = 0; k < KEYS; k++)
		if ((uintptr_t)strmap_get(&m, key, key_of(k, key, sizeof(key))) != model[k])
			fail_msg("final state of %s differs from the model", key);
	strmap_clear(&m);
}

/* A map draining, shrunk or cleared in the middle of a move keeps every entry, or frees them all. */
static void test_drain_shrink_and_clear_while_growing(void **state)
{
	struct strmap m;
	char key[32];
	size_t i = 0;

	(void)state;
	strmap_init(&m);
	while (m.cap < 65536 || !m.old_count) {
		assert_int_equal(strmap_put(&m, key, key_of(i, key, sizeof(key)), value_of(i)), 0);
		i++;
	}
	for (size_t k = 0; k + 10 < i; k++)
		assert_ptr_equal(strmap_del(&m, key, key_of(k, key, sizeof(key))), value_of(k));
	assert_int_equal(m.count, 10);
	assert_null(m.old);                 /* the deletes moved the rest over: the old table is given back */
	strmap_shrink(&m);
	assert_null(m.old);
	assert_true(m.cap <= 256);
	for (size_t k = 0; k < i; k++)
		assert_ptr_equal(strmap_get(&m, key, key_of(k, key, sizeof(key))), k + 10 < i ? NULL : value_of(k));
	while (!m.old_count) {
		assert_int_equal(strmap_put(&m, key, key_of(i, key, sizeof(key)), value_of(i)), 0);
		i++;
	}
	strmap_clear(&m);                   /* both tables' keys freed: ASan's leak check says */
	assert_int_equal(m.count, 0);
	assert_null(strmap_get(&m, "customer-1", 10));
}

/* The keys the filter below keeps, by their values. */
struct keep_set {
	void *a, *b;
};

static int keep_two(const struct strmap_slot *slot, void *ctx)
{
	const struct keep_set *k = ctx;
	return slot->value == k->a || slot->value == k->b;
}

/*
 * A map that is emptied while its old table still holds entries gives that
 * table back at once, by filter or by delete; a shrink that would not shrink
 * leaves the move to go on at its own pace (it used to finish it whole).
 */
static void test_old_table_given_back_when_emptied(void **state)
{
	struct strmap m;
	const struct strmap_slot *slot;
	struct keep_set keep = { NULL, NULL };
	char key[32];
	size_t i = 0, pos = 0;

	(void)state;
	strmap_init(&m);
	while (m.cap < 65536 || !m.old_count) {
		assert_int_equal(strmap_put(&m, key, key_of(i, key, sizeof(key)), value_of(i)), 0);
		i++;
	}
	size_t in_old = m.old_count;
	strmap_shrink(&m);                  /* far from 1/64 full: nothing to shrink, nothing moved */
	assert_int_equal(m.old_count, in_old);
	/* strmap_next visits the old table's slots first */
	while (strmap_next(&m, &pos, &slot) && pos <= m.old_cap)
		if (!keep.a)
			keep.a = slot->value;
		else if (!keep.b)
			keep.b = slot->value;
	assert_non_null(keep.b);
	strmap_filter(&m, keep_two, &keep);
	assert_int_equal(m.count, 2);
	assert_int_equal(m.old_count, 2);
	for (size_t k = 0; k < i; k++)
		if (value_of(k) == keep.a || value_of(k) == keep.b)
			assert_ptr_equal(strmap_del(&m, key, key_of(k, key, sizeof(key))), value_of(k));
	assert_int_equal(m.count, 0);
	assert_null(m.old);
	strmap_clear(&m);

	/* the same by a filter that keeps nothing */
	strmap_init(&m);
	for (i = 0; m.cap < 65536 || !m.old_count; i++)
		assert_int_equal(strmap_put(&m, key, key_of(i, key, sizeof(key)), value_of(i)), 0);
	keep.a = keep.b = NULL;
	strmap_filter(&m, keep_two, &keep);
	assert_int_equal(m.count, 0);
	assert_null(m.old);
	strmap_clear(&m);
}

/* A filter in stretches, over both tables while the map grows, ends as one whole filter does. */
static void test_filter_in_stretches(void **state)
{
	struct strmap m;
	char key[32];
	size_t i = 0, pos = 0, calls = 0;

	(void)state;
	strmap_init(&m);
	while (m.cap < 16384 || !m.old_count) {
		assert_int_equal(strmap_put(&m, key, key_of(i, key, sizeof(key)), value_of(i)), 0);
		i++;
	}
	while (strmap_filter_some(&m, keep_odd, NULL, &pos, 100))
		calls++;
	assert_true(calls > 100);
	assert_int_equal(m.count, i / 2);
	for (size_t k = 0; k < i; k++)
		assert_ptr_equal(strmap_get(&m, key, key_of(k, key, sizeof(key))), k % 2 ? value_of(k) : NULL);
	size_t seen = 0;
	const struct strmap_slot *slot;
	for (pos = 0; strmap_next(&m, &pos, &slot);)
		seen++;
	assert_int_equal(seen, i / 2);
	strmap_clear(&m);
}

static int byte_order(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	return c ? c : (alen > blen) - (alen < blen);
}

/*
 * Sorted slots are in byte order of the keys, whatever the keys share:
 * prefixes longer than the 16 bytes compared first, zero bytes inside a key,
 * a key that is another's start. `after` leaves out what is not past it.
 */
static void test_sorted_in_byte_order(void **state)
{
	static const char *const fixed[] = { "", "a", "a\0", "a\0\0b", "ab", "b",
		"the-same-long-prefix-1", "the-same-long-prefix-10", "the-same-long-prefix-2",
		"the-same-long-prefix", "the-same-long-prefi\xff", "\xff\xfe" };
	static const size_t fixed_len[] = { 0, 1, 2, 4, 2, 1, 22, 23, 22, 20, 20, 2 };
	struct strmap m;
	char key[64];
	size_t n, total = 0, inside = 0;
	int v = 1;

	(void)state;
	strmap_init(&m);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++, total++)
		assert_int_equal(strmap_put(&m, fixed[i], fixed_len[i], &v), 0);
	for (size_t i = 0; i < MANY; i++, total++)
		assert_int_equal(strmap_put(&m, key, key_of(i * 7919 % MANY, key, sizeof(key)), &v), 0);

	const struct strmap_slot **all = strmap_sorted(&m, NULL, 0, &n);
	assert_non_null(all);
	assert_int_equal(n, total);
	for (size_t i = 1; i < n; i++)
		assert_true(byte_order(all[i - 1]->key, all[i - 1]->len, all[i]->key, all[i]->len) < 0);
	for (size_t i = 0; i < n; i++)
		inside += byte_order(all[i]->key, all[i]->len, "customer-5", 10) > 0;
	free(all);

	const struct strmap_slot **past = strmap_sorted(&m, "customer-5", 10, &n);
	assert_non_null(past);
	assert_int_equal(n, inside);
	assert_true(n > 0 && n < total);
	for (size_t i = 0; i < n; i++)
		assert_true(byte_order(past[i]->key, past[i]->len, "customer-5", 10) > 0);
	free(past);
	strmap_clear(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_put_get_replace_del),
		cmocka_unit_test(test_many_keys_rehash_and_delete_half),
		cmocka_unit_test(test_random_ops_match_model),
		cmocka_unit_test(test_shrinks_after_a_burst),
		cmocka_unit_test(test_keeps_its_table_through_a_flush_cycle),
		cmocka_unit_test(test_filter_in_place),
		cmocka_unit_test(test_grows_a_little_at_each_insert),
		cmocka_unit_test(test_lookups_by_hash_and_hints_while_growing),
		cmocka_unit_test(test_changes_while_growing_match_model),
		cmocka_unit_test(test_drain_shrink_and_clear_while_growing),
		cmocka_unit_test(test_old_table_given_back_when_emptied),
		cmocka_unit_test(test_filter_in_stretches),
		cmocka_unit_test(test_sorted_in_byte_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
