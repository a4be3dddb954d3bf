/*
 * codec.h: big-endian writers and bounds-checked readers for stored records
 * and keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "hearth/codec.h"

static void test_wbuf_bytes_are_big_endian(void **state)
{
	static const uint8_t want[] = {
		0xab,                                           /* u8 */
		0x12, 0x34,                                     /* u16 */
		0xde, 0xad, 0xbe, 0xef,                         /* u32 */
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* u64 */
		0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* i64 0 */
		0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* i64 -1 */
		0x03, 'a', 'b', 'c',                            /* str8 */
		0x00,                                           /* empty str8 */
	};
	struct wbuf b;

	(void)state;
	wbuf_init(&b);
	wbuf_u8(&b, 0xab);
	wbuf_u16(&b, 0x1234);
	wbuf_u32(&b, 0xdeadbeef);
	wbuf_u64(&b, 0x0102030405060708ULL);
	wbuf_i64(&b, 0);
	wbuf_i64(&b, -1);
	wbuf_str8(&b, "abcdef", 3);
	wbuf_str8(&b, "", 0);
	assert_false(b.failed);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.data, want, sizeof(want));
	wbuf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void test_round_trip(void **state)
{
	static const int64_t signed_values[] = { INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX,
						 -1795140000000LL, 1795140000000LL };
	char long_str[255];
	struct wbuf b;
	struct rbuf r;
	size_t len;
	const char *s;

	(void)state;
	memset(long_str, 'x', sizeof(long_str));
	wbuf_init(&b);
	wbuf_u8(&b, 0);
	wbuf_u8(&b, 255);
	wbuf_u16(&b, 0xffff);
	wbuf_u32(&b, 0x80000001u);
	wbuf_u64(&b, UINT64_MAX);
	for (size_t i = 0; i < sizeof(signed_values) / sizeof(signed_values[0]); i++)
		wbuf_i64(&b, signed_values[i]);
	wbuf_str8(&b, "hello", 5);
	wbuf_str8(&b, long_str, sizeof(long_str));
	wbuf_put(&b, "tail", 4);
	assert_false(b.failed);

	rbuf_init(&r, b.data, b.len);
	assert_int_equal(rbuf_u8(&r), 0);
	assert_int_equal(rbuf_u8(&r), 255);
	assert_int_equal(rbuf_u16(&r), 0xffff);
	assert_int_equal(rbuf_u32(&r), 0x80000001u);
	assert_true(rbuf_u64(&r) == UINT64_MAX);
	for (size_t i = 0; i < sizeof(signed_values) / sizeof(signed_values[0]); i++)
		assert_true(rbuf_i64(&r) == signed_values[i]);
	s = rbuf_str8(&r, &len);
	assert_int_equal(len, 5);
	assert_memory_equal(s, "hello", 5);
	s = rbuf_str8(&r, &len);
	assert_int_equal(len, 255);
	assert_memory_equal(s, long_str, 255);
	s = rbuf_bytes(&r, 4);
	assert_non_null(s);
	assert_memory_equal(s, "tail", 4);
	assert_ptr_equal(r.p, r.end);
	assert_false(r.failed);
	wbuf_free(&b);
}

static void test_wbuf_grows_and_resets(void **state)
{
	struct wbuf b;

	(void)state;
	wbuf_init(&b);
	for (uint32_t i = 0; i < 100000; i++)
		wbuf_u32(&b, i);
	assert_false(b.failed);
	assert_int_equal(b.len, 400000);
	assert_true(b.cap >= b.len);
	struct rbuf r;
	rbuf_init(&r, b.data, b.len);
	for (uint32_t i = 0; i < 100000; i++)
		if (rbuf_u32(&r) != i)
			fail_msg("value %u read back wrong", i);
	assert_false(r.failed);
	wbuf_reset(&b);
	assert_int_equal(b.len, 0);
	wbuf_u8(&b, 7);
	assert_int_equal(b.len, 1);
	assert_int_equal(b.data[0], 7);
	wbuf_free(&b);
}

static void test_str8_too_long_latches(void **state)
{
	char big[256];
	struct wbuf b;

	(void)state;
	memset(big, 'y', sizeof(big));
	wbuf_init(&b);
	wbuf_str8(&b, big, sizeof(big));
	assert_true(b.failed);
	assert_int_equal(b.len, 0);
	/* once failed, later writes do nothing */
	wbuf_u32(&b, 1);
	assert_true(b.failed);
	assert_int_equal(b.len, 0);
	wbuf_reset(&b);
	assert_false(b.failed);
	wbuf_free(&b);
}

static void test_short_reads_latch(void **state)
{
	static const uint8_t data[] = { 0x00, 0x01, 0x02 };
	struct rbuf r;
	size_t len = 99;

	(void)state;
	rbuf_init(&r, data, sizeof(data));
	assert_int_equal(rbuf_u16(&r), 0x0001);
	assert_false(r.failed);
	assert_int_equal(rbuf_u32(&r), 0);        /* 1 byte left: short */
	assert_true(r.failed);
	/* latched: even a read that would fit now fails and moves nothing */
	assert_int_equal(rbuf_u8(&r), 0);
	assert_true(r.failed);
	assert_ptr_equal(r.p, data + 2);
	assert_null(rbuf_bytes(&r, 0));

	/* a str8 whose length byte promises more than there is */
	static const uint8_t bad_str[] = { 0x05, 'a', 'b' };
	rbuf_init(&r, bad_str, sizeof(bad_str));
	assert_null(rbuf_str8(&r, &len));
	assert_int_equal(len, 0);
	assert_true(r.failed);

	/* each width fails on an empty buffer */
	rbuf_init(&r, data, 0);
	assert_true(rbuf_u64(&r) == 0);
	assert_true(r.failed);
	rbuf_init(&r, data, 0);
	assert_true(rbuf_i64(&r) == ordered_to_i64(0));
	assert_true(r.failed);
	rbuf_init(&r, data, 1);
	assert_int_equal(rbuf_u16(&r), 0);
	assert_true(r.failed);
	rbuf_init(&r, data, 0);
	assert_null(rbuf_str8(&r, &len));
	assert_true(r.failed);
}

static void encode_i64(int64_t v, uint8_t out[8])
{
	struct wbuf b;

	wbuf_init(&b);
	wbuf_i64(&b, v);
	assert_int_equal(b.len, 8);
	memcpy(out, b.data, 8);
	wbuf_free(&b);
}

static void test_i64_byte_order_is_numeric_order(void **state)
{
	static const int64_t ascending[] = { INT64_MIN, -1795140000000LL, -256, -5, -1, 0, 1, 5,
					     255, 256, 1795140000000LL, INT64_MAX };
	size_t n = sizeof(ascending) / sizeof(ascending[0]);
	uint8_t a[8], b[8];

	(void)state;
	encode_i64(-5, a);
	encode_i64(0, b);
	assert_true(memcmp(a, b, 8) < 0);
	encode_i64(5, a);
	assert_true(memcmp(b, a, 8) < 0);
	for (size_t i = 0; i + 1 < n; i++) {
		encode_i64(ascending[i], a);
		encode_i64(ascending[i + 1], b);
		if (memcmp(a, b, 8) >= 0)
			fail_msg("%lld does not sort before %lld", (long long)ascending[i],
				 (long long)ascending[i + 1]);
	}
	for (size_t i = 0; i < n; i++)
		assert_true(ordered_to_i64(i64_to_ordered(ascending[i])) == ascending[i]);
}

/* LEB128 as written from an empty buffer (the slow path) and into room already there (inline). */
static void test_varint_both_paths(void **state)
{
	static const uint64_t values[] = { 0, 1, 127, 128, 300, 16383, 16384, 1ULL << 35, UINT64_MAX - 1,
					   UINT64_MAX };
	const size_t n = sizeof(values) / sizeof(values[0]);
	struct wbuf w;
	struct rbuf r;

	(void)state;
	wbuf_init(&w);
	wbuf_varint(&w, 300);
	assert_int_equal(w.len, 2);
	assert_int_equal(w.data[0], 0xac);
	assert_int_equal(w.data[1], 0x02);
	assert_int_equal(wbuf_reserve(&w, 64 * n), 0);
	for (size_t i = 0; i < n; i++)
		wbuf_varint(&w, values[i]);
	wbuf_varint(&w, UINT64_MAX);
	assert_int_equal(w.data[w.len - 1], 0x01); /* ten bytes: 64 bits in 7s */
	rbuf_init(&r, w.data, w.len);
	assert_int_equal(rbuf_varint(&r), 300);
	for (size_t i = 0; i < n; i++)
		assert_true(rbuf_varint(&r) == values[i]);
	assert_true(rbuf_varint(&r) == UINT64_MAX);
	assert_false(r.failed);
	assert_true(r.p == r.end);
	wbuf_free(&w);
}

static void test_be64(void **state)
{
	uint8_t p[8];

	(void)state;
	be64_put(p, 0x1122334455667788ULL);
	assert_memory_equal(p, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	assert_true(be64_get(p) == 0x1122334455667788ULL);
	/* unsigned byte order is numeric order too */
	uint8_t q[8];
	be64_put(p, 255);
	be64_put(q, 256);
	assert_true(memcmp(p, q, 8) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wbuf_bytes_are_big_endian),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_wbuf_grows_and_resets),
		cmocka_unit_test(test_str8_too_long_latches),
		cmocka_unit_test(test_short_reads_latch),
		cmocka_unit_test(test_i64_byte_order_is_numeric_order),
		cmocka_unit_test(test_be64),
		cmocka_unit_test(test_varint_both_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
