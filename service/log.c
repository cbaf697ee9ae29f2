/*
 * log.c - see log.h. One fprintf per line, so lines from threads never
 * interleave. Control characters in a message (a path or an id from a
 * request) are shown as '?', so no input can forge a line of its own; in
 * JSON lines so are bytes that are not UTF-8.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "util.h"

static enum log_level min_level = LOG_INFO;
static enum log_format format = LOG_FORMAT_TEXT;
static const char *const names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

int log_level_parse(const char *s, enum log_level *out)
{
	static const char *const lower[] = { "debug", "info", "warn", "error" };
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, lower[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

void log_set_level(enum log_level level)
{
	min_level = level;
}

int log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "text") == 0)
		*out = LOG_FORMAT_TEXT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -1;
	return 0;
}

void log_set_format(enum log_format f)
{
	format = f;
}

/* The length of the valid UTF-8 sequence at p (1 to 4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p)
{
	size_t n = p[0] < 0x80             ? 1
		   : (p[0] & 0xe0) == 0xc0 ? 2
		   : (p[0] & 0xf0) == 0xe0 ? 3
		   : (p[0] & 0xf8) == 0xf0 ? 4
					   : 0;
	if (n == 2 && p[0] < 0xc2)
		return 0; /* overlong */
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* msg as the body of a JSON string: quotes and backslashes escaped, bytes that are not UTF-8 '?'
 * (control characters are gone already). */
static void json_escape(const char *msg, char *out, size_t n)
{
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)msg;
	while (*p && o + 5 < n) {
		size_t len = utf8_len(p);
		if (*p == '"' || *p == '\\') {
			out[o++] = '\\';
			out[o++] = (char)*p++;
		} else if (len == 0) {
			out[o++] = '?';
			p++;
		} else {
			memcpy(out + o, p, len);
			o += len;
			p += len;
		}
	}
	out[o] = '\0';
}

int log_enabled(enum log_level level)
{
	return level >= min_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	if (level < min_level)
		return;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	char when[ISO_TIME_LEN];
	iso_time_format((int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000, when);
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (unsigned char *p = (unsigned char *)msg; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (format == LOG_FORMAT_JSON) {
		static const char *const lower[] = { "debug", "info", "warn", "error" };
		char esc[2 * sizeof(msg)];
		json_escape(msg, esc, sizeof(esc));
		fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", when, lower[level],
			esc);
		return;
	}
	fprintf(stderr, "%s %-5s %s\n", when, names[level], msg);
}
