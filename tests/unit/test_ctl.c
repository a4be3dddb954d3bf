/*
 * tools/ctl_table.c: terminal columns of UTF-8 text (wcwidth under a UTF-8
 * locale, whatever the caller's), tables padded by them, and times shown in
 * the zone --tz names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/ctl.h"
#include "hearth/units.h"

static void test_widths(void **state)
{
	(void)state;
	assert_int_equal(text_width(""), 0);
	assert_int_equal(text_width("Hu Xinyi"), 8);
	assert_int_equal(text_width("刘晓东"), 6);
	assert_int_equal(text_width("Luo Juan（湖畔公寓）"), 20);   /* fullwidth parentheses */
	assert_int_equal(text_width("한국"), 4);
	assert_int_equal(text_width("ｱｲ"), 2);                     /* halfwidth katakana */
	/* emoji of the relay's messages are wide too */
	assert_int_equal(text_width("✅"), 2);
	assert_int_equal(text_width("🟠🔴"), 4);
	assert_int_equal(text_width("🚀"), 2);
	/* combining marks take no column: é as e + U+0301, Thai กั */
	assert_int_equal(text_width("Nguye\xcc\x82\xcc\x83n"), 6);
	assert_int_equal(text_width("\xe0\xb8\x81\xe0\xb8\xb1"), 1);
	assert_int_equal(text_width("a\xe2\x80\x8b" "b"), 2);           /* zero width space */
	/* a stray byte is one column, as the terminal's replacement character */
	assert_int_equal(text_width("a\xff" "b"), 3);
	assert_int_equal(text_width("\xe5\x88"), 2);                    /* cut sequence */
}

/* watch pads its columns with pad_to: by columns, and never cutting a longer text */
static void test_pad_to(void **state)
{
	(void)state;
	char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);

	assert_non_null(f);
	pad_to(f, "刘晓东", 10);
	fputc('|', f);
	pad_to(f, "C1", 4);
	fputc('|', f);
	pad_to(f, "客户降温客户降温", 4);
	fputc('|', f);
	fclose(f);
	assert_string_equal(out, "刘晓东    |C1  |客户降温客户降温|");
	free(out);
}

/* Every line of a table whose last column is right-aligned is as wide as the header. */
static void test_table_lines_up(void **state)
{
	(void)state;
	static const struct column cols[] = {
		{ "ID", "id", CELL_TEXT },
		{ "NAME", "name", CELL_TEXT },
		{ "OWNER", "owner", CELL_TEXT },
		{ "SCORE", "score", CELL_NUM },
	};
	struct json_object *rows = json_tokener_parse(
		"[{\"id\":\"C1272\",\"name\":\"刘晓东\",\"owner\":\"wang\",\"score\":62.37},"
		" {\"id\":\"C1248\",\"name\":\"Hu Xinyi\",\"owner\":\"chen\",\"score\":45.6},"
		" {\"id\":\"C1165\",\"name\":\"Luo Juan（湖畔公寓）\",\"owner\":\"chen\",\"score\":29.25},"
		" {\"id\":\"C9\",\"name\":\"✅ Đặng Thị\",\"owner\":\"张伟\",\"score\":1}]");
	char *text = NULL, *save = NULL;
	size_t size = 0, want = 0, lines = 0;
	FILE *f = open_memstream(&text, &size);

	assert_non_null(rows);
	assert_non_null(f);
	assert_int_equal(table_print(f, "  ", cols, 4, rows), 0);
	fclose(f);
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *owner = strstr(line, "wang") ? strstr(line, "wang") : strstr(line, "chen") ?
			      strstr(line, "chen") : strstr(line, "张伟") ? strstr(line, "张伟") : strstr(line, "OWNER");
		assert_non_null(owner);
		char c = *owner;
		*owner = '\0';
		size_t at = text_width(line);       /* where the OWNER column starts */
		*owner = c;
		if (!lines)
			want = text_width(line);
		assert_int_equal(text_width(line), want);
		assert_int_equal(at, 2 + 5 + 2 + 20 + 2);
		lines++;
	}
	assert_int_equal(lines, 5);
	free(text);
	json_object_put(rows);
}

static void test_times_in_zone(void **state)
{
	(void)state;
	struct herr err;
	char buf[128];
	int64_t ms;

	assert_int_equal(time_parse_rfc3339("2026-12-01T13:58:25.583Z", 24, &ms), 0);
	human_set_now(ms + 3 * MS_PER_DAY + 5 * MS_PER_HOUR);
	assert_int_equal(human_set_tz("CST-8", &err), 0);
	assert_string_equal(human_time_ms(ms, buf, sizeof(buf)), "2026-12-01 21:58 (3d ago)");
	assert_int_equal(human_set_tz("UTC", &err), 0);
	assert_string_equal(human_time("2026-12-01T13:58:25.583Z", buf, sizeof(buf)), "2026-12-01 13:58 (3d ago)");
	assert_int_equal(human_set_tz("Mars/Olympus_Mons", &err), -1);
	assert_non_null(strstr(err.msg, "Mars/Olympus_Mons"));
	/* a bad zone leaves the one in force */
	assert_string_equal(human_time("2026-12-01T13:58:25.583Z", buf, sizeof(buf)), "2026-12-01 13:58 (3d ago)");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_widths),
		cmocka_unit_test(test_pad_to),
		cmocka_unit_test(test_table_lines_up),
		cmocka_unit_test(test_times_in_zone),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
