/*
 * check.h - the unit tests' few macros: CHECK records a failure and goes
 * on, RUN runs one test function and prints its name and verdict, and
 * check_done() ends main with the count and the exit status.
 */
#ifndef CHECK_H
#define CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;
static int check_test_failed;
static int check_passed, check_failed;

#define CHECK(cond)                                                                                          \
	do {                                                                                                 \
		if (!(cond)) {                                                                               \
			fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);           \
			check_failures++;                                                                    \
			check_test_failed = 1;                                                               \
		}                                                                                            \
	} while (0)

#define CHECK_STR(a, b)                                                                                      \
	do {                                                                                                 \
		const char *a_ = (a), *b_ = (b);                                                             \
		if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                     \
			fprintf(stderr, "  %s:%d: CHECK_STR failed: %s == \"%s\", expected \"%s\"\n",        \
				__FILE__, __LINE__, #a, a_ ? a_ : "(null)", b_ ? b_ : "(null)");             \
			check_failures++;                                                                    \
			check_test_failed = 1;                                                               \
		}                                                                                            \
	} while (0)

#define RUN(fn)                                                                                              \
	do {                                                                                                 \
		check_test_failed = 0;                                                                       \
		fn();                                                                                        \
		printf("%s %s\n", check_test_failed ? "FAIL" : "ok  ", #fn);                                 \
		if (check_test_failed)                                                                       \
			check_failed++;                                                                      \
		else                                                                                         \
			check_passed++;                                                                      \
	} while (0)

static inline int check_done(void)
{
	printf("%d passed, %d failed\n", check_passed, check_failed);
	return check_failed ? 1 : 0;
}

#endif
