/*
 * src/common/thread.c: a thread put in the C locale is in glibc's C locale
 * object, for which the calls json-c makes around every parse (duplocale,
 * newlocale, freelocale) hand back that object instead of allocating under
 * the global locale lock; and numbers still parse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <locale.h>
#include <pthread.h>
#include <json-c/json.h>

#include "hearth/thread.h"

static void *in_c_locale(void *arg)
{
	int *ok = arg;
	locale_t before = uselocale((locale_t)0), now, dup, num;

	thread_use_c_locale();
	now = uselocale((locale_t)0);
	dup = duplocale(now);
	num = newlocale(LC_NUMERIC_MASK, "C", dup);
	struct json_object *o = json_tokener_parse("{\"v\": 1.5, \"n\": -12}");
	*ok = before == LC_GLOBAL_LOCALE && now != LC_GLOBAL_LOCALE && dup == now && num == now &&
	      o && json_object_get_double(json_object_object_get(o, "v")) == 1.5 &&
	      json_object_get_int(json_object_object_get(o, "n")) == -12 &&
	      uselocale((locale_t)0) == now;
	json_object_put(o);
	freelocale(num);
	return NULL;
}

static void test_parse_without_locale_copies(void **state)
{
	pthread_t t;
	int ok = 0;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, in_c_locale, &ok), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(ok);
}

static void *named(void *arg)
{
	int *ok = arg;

	thread_setup("hearth-test", 0, "test");
	*ok = uselocale((locale_t)0) != LC_GLOBAL_LOCALE &&
	      duplocale(uselocale((locale_t)0)) == uselocale((locale_t)0);
	return NULL;
}

static void test_setup_puts_thread_in_c_locale(void **state)
{
	pthread_t t;
	int ok = 0;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, named, &ok), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_without_locale_copies),
		cmocka_unit_test(test_setup_puts_thread_in_c_locale),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
