/*
 * body_codec.h: notification bodies as the outbox keeps them. Bodies come
 * back byte for byte; records kept plain (before compression) read as they
 * are; a damaged record is refused, never half read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hearth/body_codec.h"
#include "hearth/codec.h"

static const char body[] =
	"{\"seq\":195,\"ts\":\"2026-10-01T00:00:00.013Z\",\"kind\":\"resolved\",\"alert\":{\"rule\":"
	"\"customer_cooling\",\"customer\":\"C0051635\",\"severity\":\"warning\",\"state\":\"resolved\","
	"\"since\":\"2026-10-01T00:00:00.005Z\",\"resolved_at\":\"2026-10-01T00:00:00.013Z\",\"summary\":"
	"\"Customer 0051635 (C0051635, tier D) has had no contact for 364d 10h\",\"values_at\":"
	"\"2026-10-01T00:00:00.013Z\",\"values\":{\"tier\":\"D\",\"since(touch)\":31488850144,\"age()\":"
	"31532558807},\"labels\":{\"team\":\"sales\"}},\"customer\":{\"id\":\"C0051635\",\"name\":"
	"\"Customer 0051635\",\"owner\":\"chen\",\"tier\":\"D\"}}";

static void expect_round_trip(struct body_codec *bc, const char *text, size_t len, struct wbuf *out)
{
	size_t got_len;

	wbuf_reset(out);
	assert_int_equal(body_codec_pack(bc, text, len, out), 0);
	const char *got = body_codec_unpack(bc, 195, out->data, out->len, &got_len);
	assert_non_null(got);
	assert_int_equal(got_len, len);
	assert_memory_equal(got, text, len);
}

static void test_round_trip(void **state)
{
	struct body_codec *bc = body_codec_new();
	struct wbuf out;

	(void)state;
	assert_non_null(bc);
	wbuf_init(&out);
	expect_round_trip(bc, body, sizeof(body) - 1, &out);
	/* the shape is in the dictionary: a third of the JSON or less */
	assert_true(out.len * 3 < sizeof(body) - 1);
	/* a body unlike any other, long: still whole */
	size_t big = 200000;
	char *text = malloc(big);
	assert_non_null(text);
	for (size_t i = 0; i < big; i++)
		text[i] = (char)('a' + (i * 7919 + i / 13) % 26);
	expect_round_trip(bc, text, big, &out);
	free(text);
	/* short ones stay as they are: compressing would not save a byte */
	expect_round_trip(bc, "{}", 2, &out);
	assert_int_equal(out.len, 2);
	wbuf_free(&out);
	body_codec_free(bc);
	body_codec_free(NULL);
}

static void test_plain_records_read_as_they_are(void **state)
{
	struct body_codec *bc = body_codec_new();
	size_t len;

	(void)state;
	const char *got = body_codec_unpack(bc, 195, body, sizeof(body) - 1, &len);
	assert_ptr_equal(got, body);
	assert_int_equal(len, sizeof(body) - 1);
	body_codec_free(bc);
}

static void test_damaged_records_are_refused(void **state)
{
	struct body_codec *bc = body_codec_new();
	struct wbuf out;
	size_t len;

	(void)state;
	wbuf_init(&out);
	assert_int_equal(body_codec_pack(bc, body, sizeof(body) - 1, &out), 0);
	for (size_t cut = 1; cut < out.len; cut++)
		assert_null(body_codec_unpack(bc, 195, out.data, cut, &len));
	for (size_t at = 1; at < out.len; at += 5) {
		out.data[at] ^= 0x5a;
		const char *got = body_codec_unpack(bc, 195, out.data, out.len, &len);
		/* zstd frames carry no checksum here: a flipped byte may still decode, never overrun */
		assert_true(!got || len <= (16u << 20));
		out.data[at] ^= 0x5a;
	}
	assert_null(body_codec_unpack(bc, 195, out.data, 0, &len));
	wbuf_free(&out);
	body_codec_free(bc);
}

/* A body packed without its seq (by a worker, before the writer numbers it) reads back whole under its seq. */
static void test_rest_packed_before_its_seq(void **state)
{
	struct body_codec *bc = body_codec_new();
	const char *rest = strchr(body, ',');
	struct wbuf out;
	size_t len;

	(void)state;
	wbuf_init(&out);
	assert_int_equal(body_codec_pack_rest(bc, rest, strlen(rest), &out), 0);
	assert_true(out.len * 3 < sizeof(body) - 1);
	const char *got = body_codec_unpack(bc, 195, out.data, out.len, &len);
	assert_non_null(got);
	assert_int_equal(len, sizeof(body) - 1);
	assert_memory_equal(got, body, len);
	/* the seq comes from the record's key */
	got = body_codec_unpack(bc, 18446744073709551615ULL, out.data, out.len, &len);
	assert_non_null(got);
	assert_int_equal(len, sizeof(body) - 1 - 3 + 20);
	assert_memory_equal(got, "{\"seq\":18446744073709551615,\"ts\":", 33);
	for (size_t cut = 1; cut < out.len; cut++)
		assert_null(body_codec_unpack(bc, 195, out.data, cut, &len));
	wbuf_free(&out);
	body_codec_free(bc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_plain_records_read_as_they_are),
		cmocka_unit_test(test_damaged_records_are_refused),
		cmocka_unit_test(test_rest_packed_before_its_seq),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
