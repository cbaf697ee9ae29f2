/* A minimal HTTP/1.1 client over one keep-alive TCP connection to the
 * service on 127.0.0.1: the request formatter and the response parser the
 * load generator needs, nothing more (no TLS, no redirects, no pipelining).
 * The socket is non-blocking so an epoll loop can drive many connections
 * (http_conn_send + http_conn_read); http_conn_request() is the blocking
 * convenience built on the same pieces. One connection is used by one thread
 * at a time; the caller serialises. */
#ifndef BENCH_HTTP_CLIENT_H
#define BENCH_HTTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct http_conn {
	int fd; /* -1 when closed */
	uint16_t port;
	unsigned opens; /* counts (re)connections: a new fd to watch */
	char *buf;      /* received bytes, owned */
	char *dbuf;     /* decoded chunked body, owned */
	size_t len, cap;
	/* Valid after http_conn_read() returned 1, until http_conn_consume(). */
	int status;
	const char *body; /* points into buf, not NUL-terminated */
	size_t body_len;
	size_t resp_len; /* bytes of buf the response occupies */
	int close_after; /* the server said Connection: close */
};

/* Connects (blocking) to 127.0.0.1:port with TCP_NODELAY, then switches the
 * socket to non-blocking. Returns 0, or -1 with errno set. */
int http_conn_open(struct http_conn *c, uint16_t port);
/* Sends one request; body may be NULL (then no Content-Type is sent) and
 * is sent as application/json otherwise. Returns 0, or -1 if the socket
 * did not take the whole request. */
int http_conn_send(struct http_conn *c, const char *method, const char *path, const char *body);
/* Reads what the socket has. Returns 1 when a whole response is buffered
 * (status, body set), 0 when more is needed, -1 on error or end of stream. */
int http_conn_read(struct http_conn *c);
/* Drops the parsed response from the buffer (and reconnects when the
 * server asked to close). */
void http_conn_consume(struct http_conn *c);
/* Blocking request: send, then wait up to timeout_ms for the response.
 * Returns the HTTP status (body in c->body until the next call), or -1.
 * Reconnects once if the server had closed the idle connection. */
int http_conn_request(struct http_conn *c, const char *method, const char *path, const char *body,
		      int timeout_ms);
void http_conn_close(struct http_conn *c);

/* The first value of string member `key` at any depth of a flat-enough JSON
 * text whose value satisfies `accept` (NULL = any): copied into out (NUL
 * terminated, at most outsz-1 bytes). Returns the length or -1. Enough for
 * pulling a call id or a status out of the service's replies and events
 * without parsing every one of them into a tree. */
int json_find_string(const char *json, size_t len, const char *key, char *out, size_t outsz,
		     int (*accept)(const char *value, size_t n));
/* The first number value of member `key` into *out. Returns 0 or -1. */
int json_find_long(const char *json, size_t len, const char *key, long *out);
/* Accepts a 36-character lowercase UUID. */
int json_value_is_uuid(const char *value, size_t n);
/* Counts occurrences of needle in hay. */
size_t count_occurrences(const char *hay, size_t len, const char *needle);

#endif
