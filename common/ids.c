/*
 * ids.c - see ids.h. Every function reads only its arguments.
 */
#include "ids.h"

#include <string.h>

bool utf8_is_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned int cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + n >= len)
			return false; /* truncated sequence */
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* overlong forms, surrogates and values past U+10FFFF */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		i += n + 1;
	}
	return true;
}

/* The id grammar without its length limit: valid UTF-8, no '/', '+', '#' or control bytes. */
static bool level_is_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f || c == '/' || c == '+' || c == '#')
			return false;
	}
	return utf8_is_valid(s, len);
}

bool id_is_valid(const char *s, size_t len)
{
	return len > 0 && len <= ID_MAX_LEN && level_is_valid(s, len);
}

bool id_str_is_valid(const char *s)
{
	return s != NULL && id_is_valid(s, strlen(s));
}

/* The device part of a user's client id: at least one byte, no '.' (the rest of the grammar is checked
 * whole). */
static bool device_is_valid(const char *s, size_t len)
{
	return len > 0 && memchr(s, '.', len) == NULL;
}

bool client_id_names_user(const char *client_id, const char *user_id)
{
	size_t user_len;
	size_t len;

	if (client_id == NULL || !id_str_is_valid(user_id))
		return false;
	user_len = strlen(user_id);
	len = strlen(client_id);
	return id_is_valid(client_id, len) && len > user_len + 1 &&
	       memcmp(client_id, user_id, user_len) == 0 && client_id[user_len] == '.' &&
	       device_is_valid(client_id + user_len + 1, len - user_len - 1);
}

bool client_id_names_a_user(const char *client_id)
{
	const char *dot;

	if (!id_str_is_valid(client_id))
		return false;
	dot = strrchr(client_id, '.');
	return dot != NULL && dot != client_id && dot[1] != '\0';
}
