/*
 * log.c - see log.h. One fprintf per line, so lines from threads never
 * interleave. Control characters in a message (a path or an id from a
 * request) are shown as '?', so no input can forge a line of its own.
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

/* msg as the body of a JSON string: quotes and backslashes escaped, control characters '?'. */
static void json_escape(const char *msg, char *out, size_t n)
{
	size_t o = 0;
	for (const char *p = msg; *p && o + 3 < n; p++) {
		if (*p == '"' || *p == '\\') {
			out[o++] = '\\';
			out[o++] = *p;
		} else {
			out[o++] = *p;
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
