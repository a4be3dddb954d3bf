/*
 * The flush's set of pending event ids (src/store/idset.c): membership through
 * growth and deletion, emptying that keeps the table, and the sorted order the
 * id index is written in, checked against a plain sort of the same keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/store/idset.h"
#include "hearth/strmap.h"

#define NKEYS 5000

/* Short and long keys, shared prefixes longer than 8 bytes, and prefixes of one another. */
static size_t make_key(size_t i, char *buf, size_t size)
{
	switch (i % 4) {
	case 0:
		return (size_t)snprintf(buf, size, "b%09zu", i);
	case 1:
		return (size_t)snprintf(buf, size, "%zx", i);
	case 2:
		return (size_t)snprintf(buf, size, "evt-0000000000-%zu", i);
	default:
		return (size_t)snprintf(buf, size, "%zx%c", i - 2, 'z' - (int)(i % 7));
	}
}

struct plain {
	char key[48];
	size_t len;
};

static int plain_cmp(const void *a, const void *b)
{
	const struct plain *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->key, y->key, n);
	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static void test_add_has_del(void **state)
{
	struct idset s;
	char k[48];
	(void)state;

	idset_init(&s);
	assert_false(idset_has(&s, "x", 1));
	for (size_t i = 0; i < NKEYS; i++) {
		size_t n = make_key(i, k, sizeof(k));
		assert_int_equal(idset_add(&s, k, n), 0);
	}
	assert_int_equal(s.count, NKEYS);
	for (size_t i = 0; i < NKEYS; i++) {
		size_t n = make_key(i, k, sizeof(k));
		assert_int_equal(idset_add(&s, k, n), 1);
		assert_true(idset_has(&s, k, n));
	}
	/* every other one out: the rest stay reachable past the holes */
	for (size_t i = 0; i < NKEYS; i += 2) {
		size_t n = make_key(i, k, sizeof(k));
		assert_int_equal(idset_del(&s, k, n), 1);
		assert_int_equal(idset_del(&s, k, n), 0);
	}
	assert_int_equal(s.count, NKEYS / 2);
	for (size_t i = 0; i < NKEYS; i++) {
		size_t n = make_key(i, k, sizeof(k));
		assert_int_equal(idset_has(&s, k, n), i % 2);
	}
	size_t cap = s.cap;
	idset_empty(&s);
	assert_int_equal(s.count, 0);
	assert_int_equal(s.cap, cap);
	assert_int_equal(s.bytes.len, 0);
	make_key(1, k, sizeof(k));
	assert_false(idset_has(&s, k, strlen(k)));
	assert_int_equal(idset_add(&s, k, strlen(k)), 0);
	assert_true(idset_has(&s, k, strlen(k)));
	idset_free(&s);
}

/* Adds and lookups by a given strmap_hash meet those that hash the key themselves; a hint reads nothing. */
static void test_by_hash_meets_by_key(void **state)
{
	struct idset s;
	char k[48];
	(void)state;

	idset_init(&s);
	idset_prefetch(&s, 42);
	assert_false(idset_has_hashed(&s, "x", 1, strmap_hash("x", 1)));
	for (size_t i = 0; i < NKEYS; i++) {
		size_t n = make_key(i, k, sizeof(k));
		uint64_t h = strmap_hash(k, n);
		idset_prefetch(&s, h);
		if (i % 2)
			assert_int_equal(idset_add_hashed(&s, k, n, h), 0);
		else
			assert_int_equal(idset_add(&s, k, n), 0);
	}
	for (size_t i = 0; i < NKEYS; i++) {
		size_t n = make_key(i, k, sizeof(k));
		uint64_t h = strmap_hash(k, n);
		assert_true(idset_has(&s, k, n));
		assert_true(idset_has_hashed(&s, k, n, h));
		assert_int_equal(idset_add_hashed(&s, k, n, h), 1);
	}
	make_key(NKEYS, k, sizeof(k));
	assert_false(idset_has_hashed(&s, k, strlen(k), strmap_hash(k, strlen(k))));
	idset_free(&s);
}

static void test_sorted(void **state)
{
	struct idset s;
	struct plain *want = calloc(NKEYS, sizeof(*want));
	(void)state;

	assert_non_null(want);
	idset_init(&s);
	for (size_t i = 0; i < NKEYS; i++) {
		want[i].len = make_key(i, want[i].key, sizeof(want[i].key));
		assert_int_equal(idset_add(&s, want[i].key, want[i].len), 0);
	}
	/* a deleted key must not come back in the order */
	assert_int_equal(idset_del(&s, want[7].key, want[7].len), 1);
	want[7] = want[NKEYS - 1];
	qsort(want, NKEYS - 1, sizeof(*want), plain_cmp);

	struct idset_key *keys = idset_sorted(&s);
	assert_non_null(keys);
	assert_int_equal(s.count, NKEYS - 1);
	for (size_t i = 0; i < NKEYS - 1; i++) {
		assert_int_equal(keys[i].len, want[i].len);
		assert_memory_equal(idset_key_bytes(&s, &keys[i]), want[i].key, want[i].len);
	}
	free(keys);
	free(want);
	idset_free(&s);
}

/* A table made large at once takes its keys without growing; a set with keys keeps its table. */
static void test_reserve_empty(void **state)
{
	struct idset s;
	char id[32];

	(void)state;
	idset_init(&s);
	assert_int_equal(idset_reserve_empty(&s, 1 << 16), 0);
	assert_int_equal(s.cap, 1 << 16);
	struct idset_slot *table = s.slots;
	for (int i = 0; i < 40000; i++) {
		int n = snprintf(id, sizeof(id), "ev-%d", i);
		assert_int_equal(idset_add(&s, id, (size_t)n), 0);
	}
	assert_ptr_equal(s.slots, table);       /* 40,000 under 0.7 of 65,536: never grown */
	assert_int_equal(s.cap, 1 << 16);
	assert_int_equal(idset_reserve_empty(&s, 1 << 18), 0);
	assert_int_equal(s.cap, 1 << 16);       /* not empty: left alone */
	for (int i = 0; i < 40000; i += 997) {
		int n = snprintf(id, sizeof(id), "ev-%d", i);
		assert_true(idset_has(&s, id, (size_t)n));
	}
	idset_empty(&s);
	assert_int_equal(idset_reserve_empty(&s, 1 << 10), 0);
	assert_int_equal(s.cap, 1 << 16);       /* smaller: kept */
	idset_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_has_del),
		cmocka_unit_test(test_sorted),
		cmocka_unit_test(test_by_hash_meets_by_key),
		cmocka_unit_test(test_reserve_empty),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
