/*
 * log.c - see log.h. One fprintf per line, so lines from threads never interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "util.h"

static enum log_level min_level = LOG_INFO;
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
	fprintf(stderr, "%s %-5s %s\n", when, names[level], msg);
}
