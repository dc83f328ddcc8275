/* test_maildir.c - Maildir name helpers (daemon/maildir.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "maildir.h"

static void
test_name_ok(void **state)
{
	static const struct { const char *name; int ok; } cases[] = {
		{ "1733318400.M1P2.host", 1 },
		{ "x", 1 },
		{ "", 0 },
		{ ".", 0 },
		{ "..", 0 },
		{ ".hidden", 0 },
		{ "a/b", 0 },
		{ "1733318400.M1P2.host:2,S", 1 },
	};
	char	 longname[300];
	size_t	 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(maildir_name_ok(cases[i].name), cases[i].ok);
	memset(longname, 'a', 255);
	longname[255] = '\0';
	assert_int_equal(maildir_name_ok(longname), 1);
	memset(longname, 'a', 256);
	longname[256] = '\0';
	assert_int_equal(maildir_name_ok(longname), 0);
}

static void
test_cur_name(void **state)
{
	char	 buf[64];

	assert_int_equal(maildir_cur_name("123.M1.h", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "123.M1.h:2,S");
	assert_int_equal(maildir_cur_name("123.M1.h:2,RS", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "123.M1.h:2,RS");
	assert_int_equal(maildir_cur_name("123456789012", buf, 14), -1);
}

static void
test_name_time(void **state)
{
	assert_int_equal(maildir_name_time("1733318400.M1P2.host"), 1733318400L);
	assert_int_equal(maildir_name_time("1733318400"), 0);
	assert_int_equal(maildir_name_time("abc.def"), 0);
	assert_int_equal(maildir_name_time("0.x"), 0);
	assert_int_equal(maildir_name_time("-5.x"), 0);
	assert_int_equal(maildir_name_time(""), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_ok),
		cmocka_unit_test(test_cur_name),
		cmocka_unit_test(test_name_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
