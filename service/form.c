/*
 * form.c - see form.h.
 */
#include "form.h"

#include <stdlib.h>
#include <string.h>

#include "topics.h"
#include "util.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes s[0..len) ('+' is a space, %XX a byte) into a new string of
 * *outlen bytes; NULL if malformed. */
static char *decode(const char *s, size_t len, size_t *outlen)
{
	char *out = xmalloc(len + 1);
	size_t o = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] == '%') {
			int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
			int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
			if (hi < 0 || lo < 0) {
				free(out);
				return NULL;
			}
			out[o++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	if (!utf8_is_valid(out, o)) {
		free(out);
		return NULL;
	}
	*outlen = o;
	return out;
}

enum err form_parse_fields(const char *body, size_t len, struct req_field *fields, size_t n,
			   const char **bad_field)
{
	for (size_t i = 0; i < n; i++) {
		fields[i].value = NULL;
		fields[i].len = 0;
	}
	const char *p = body, *end = body + len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pair_end = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pair_end - p));
		const char *key_end = eq ? eq : pair_end;
		for (size_t i = 0; i < n; i++) {
			size_t klen = strlen(fields[i].name);
			if ((size_t)(key_end - p) != klen || memcmp(p, fields[i].name, klen) != 0 ||
			    fields[i].value)
				continue;
			const char *v = eq ? eq + 1 : pair_end;
			fields[i].value = decode(v, (size_t)(pair_end - v), &fields[i].len);
			if (!fields[i].value) {
				*bad_field = fields[i].name;
				for (size_t k = 0; k < n; k++) {
					free(fields[k].value);
					fields[k].value = NULL;
				}
				return ERR_INVALID_FIELD;
			}
		}
		p = pair_end + 1;
	}
	return ERR_OK;
}
