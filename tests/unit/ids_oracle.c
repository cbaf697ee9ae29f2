/*
 * ids_oracle.c - the service's id and topic grammar (common/ids.c, service/topics.c) as a
 * filter, so that web/test/topics.test.js can feed the web client's copy of the grammar
 * (web/lib/topics.js) and this one the same cases. Run by that test (CTest entry web.unit).
 *
 * Each stdin line: three hex-encoded byte strings separated by one space (a user id, a client
 * id, a topic; an empty field is "-"). Each stdout line: five words, "1" or "0" for
 * id_is_valid(user id), client_id_names_user(client id, user id),
 * client_id_names_a_user(client id), topic_parse_presence(topic), and then the parsed
 * "{userId}/{clientId}" of the topic in hex ("-" when it does not parse).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topics.h"

#define FIELD_MAX 1024

/* Decodes hex into out (FIELD_MAX bytes, NUL-terminated); returns the length or -1. */
static long unhex(const char *hex, char *out)
{
	size_t n = strlen(hex);

	if (strcmp(hex, "-") == 0) {
		out[0] = '\0';
		return 0;
	}
	if (n % 2 != 0 || n / 2 >= FIELD_MAX)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned int byte;

		if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
			return -1;
		out[i] = (char)byte;
	}
	out[n / 2] = '\0';
	return (long)(n / 2);
}

static void print_hex(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		printf("%02x", *p);
}

int main(void)
{
	char line[4 * FIELD_MAX];
	char user[FIELD_MAX], client[FIELD_MAX], topic[FIELD_MAX];

	while (fgets(line, sizeof(line), stdin)) {
		char *save = NULL;
		char *f1 = strtok_r(line, " \n", &save);
		char *f2 = strtok_r(NULL, " \n", &save);
		char *f3 = strtok_r(NULL, " \n", &save);
		long ulen, tlen;
		struct presence_topic parsed;
		int parsed_ok;

		if (!f1 || !f2 || !f3 || (ulen = unhex(f1, user)) < 0 || unhex(f2, client) < 0 ||
		    (tlen = unhex(f3, topic)) < 0) {
			fprintf(stderr, "ids_oracle: bad input line\n");
			return 2;
		}
		parsed_ok = topic_parse_presence(topic, (size_t)tlen, &parsed) == 0;
		printf("%d %d %d %d ", id_is_valid(user, (size_t)ulen), client_id_names_user(client, user),
		       client_id_names_a_user(client), parsed_ok);
		if (parsed_ok) {
			print_hex(parsed.user_id);
			putchar('/');
			print_hex(parsed.client_id);
		} else {
			putchar('-');
		}
		putchar('\n');
		fflush(stdout);
	}
	return 0;
}
