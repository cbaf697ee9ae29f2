/*
 * test_form.c - form-urlencoded bodies give the same fields as JSON ones.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "form.h"

static enum err parse(const char *body, struct req_field *f, const char **bad)
{
	return form_parse_fields(body, strlen(body), f, 2, bad);
}

static void fields_are_decoded(void)
{
	struct req_field f[] = { { "callerId", NULL, 0 }, { "receiverId", NULL, 0 } };
	const char *bad;
	CHECK(parse("receiverId=b%C3%B6b+x&callerId=alice&other=1", f, &bad) == ERR_OK);
	CHECK_STR(f[0].value, "alice");
	CHECK_STR(f[1].value, "b\xc3\xb6"
			      "b x");
	free(f[0].value);
	free(f[1].value);
}

static void missing_and_repeated_fields(void)
{
	struct req_field f[] = { { "callerId", NULL, 0 }, { "receiverId", NULL, 0 } };
	const char *bad;
	CHECK(parse("callerId=a&callerId=b&receiverIdx=c", f, &bad) == ERR_OK);
	CHECK_STR(f[0].value, "a");
	CHECK(f[1].value == NULL);
	free(f[0].value);
	CHECK(parse("", f, &bad) == ERR_OK && !f[0].value && !f[1].value);
	CHECK(parse("callerId", f, &bad) == ERR_OK);
	CHECK_STR(f[0].value, "");
	free(f[0].value);
}

static void nul_is_decoded_with_its_length_for_id_checks(void)
{
	struct req_field f[] = { { "callerId", NULL, 0 }, { "receiverId", NULL, 0 } };
	const char *bad;
	CHECK(parse("callerId=a%00b", f, &bad) == ERR_OK);
	CHECK(f[0].len == 3 && f[0].value && f[0].value[1] == '\0');
	free(f[0].value);
}

static void bad_escapes_and_invalid_utf8_are_refused(void)
{
	struct req_field f[] = { { "callerId", NULL, 0 }, { "receiverId", NULL, 0 } };
	const char *bad = NULL;
	CHECK(parse("callerId=a%2", f, &bad) == ERR_INVALID_FIELD);
	CHECK_STR(bad, "callerId");
	CHECK(parse("receiverId=%zz", f, &bad) == ERR_INVALID_FIELD);
	CHECK_STR(bad, "receiverId");
	CHECK(parse("callerId=ok&receiverId=%FF", f, &bad) == ERR_INVALID_FIELD);
	CHECK(!f[0].value && !f[1].value);
}

int main(void)
{
	RUN(fields_are_decoded);
	RUN(missing_and_repeated_fields);
	RUN(nul_is_decoded_with_its_length_for_id_checks);
	RUN(bad_escapes_and_invalid_utf8_are_refused);
	return check_done();
}
