/*
 * util.h - allocation that cannot fail, string buffers, and small helpers.
 *
 * Running out of memory aborts the process (as in Redis): call sites stay
 * clean and every other failure is a checked value. sbuf is a growable
 * string buffer; whoever calls sbuf_init owns it and frees it with
 * sbuf_release, or takes its string with sbuf_detach.
 */
#ifndef CALLSIGNAL_UTIL_H
#define CALLSIGNAL_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

struct sbuf {
	char *buf; /* always NUL-terminated once initialised */
	size_t len;
	size_t cap;
};

void sbuf_init(struct sbuf *sb, size_t hint);
void sbuf_add(struct sbuf *sb, const void *data, size_t n);
void sbuf_adds(struct sbuf *sb, const char *s);
void sbuf_addc(struct sbuf *sb, char c);
void sbuf_addf(struct sbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends the whole file at path. Returns 0, or -1 (errno set) when it cannot be read. */
int sbuf_read_file(struct sbuf *sb, const char *path);
/* Returns the string (caller frees) and leaves sb empty. */
char *sbuf_detach(struct sbuf *sb, size_t *len);
void sbuf_release(struct sbuf *sb);

/* Milliseconds since the Unix epoch -> "2026-11-25T03:26:41.123Z" (25 bytes with NUL). */
#define ISO_TIME_LEN 25
void iso_time_format(int64_t ms, char out[ISO_TIME_LEN]);
/* The inverse, for exactly that form: 0 with *ms set, or -1. */
int iso_time_parse(const char *s, int64_t *ms);

#endif
