/*
 * http_server.h - HTTP plumbing on libmicrohttpd (the only includer of
 * microhttpd.h).
 *
 * Collects each request (method, path, body up to a limit) and hands it to
 * one handler function, then sends the response the handler filled in.
 * Knows nothing of routes or JSON: that is http_api's job.
 */
#ifndef CALLSIGNAL_HTTP_SERVER_H
#define CALLSIGNAL_HTTP_SERVER_H

#include <stddef.h>

#include "errors.h"

/*
 * Bounds of what the server reads (see docs/api.md). A request URI longer
 * than HTTP_URI_LIMIT bytes or with more than HTTP_QUERY_ARG_LIMIT query
 * parameters is refused with ERR_URI_TOO_LONG before libmicrohttpd parses
 * it; a request head (request line and headers) over HTTP_HEAD_LIMIT bytes
 * or with more than HTTP_HEADER_LIMIT headers with ERR_HEADERS_TOO_LARGE;
 * an oversized body is read and thrown away up to HTTP_DRAIN_LIMIT bytes
 * and HTTP_DRAIN_TIME_S seconds, so the client reads its 413.
 */
#define HTTP_URI_LIMIT       8192
#define HTTP_QUERY_ARG_LIMIT 32
#define HTTP_HEAD_LIMIT      16384
#define HTTP_HEADER_LIMIT    100
#define HTTP_DRAIN_LIMIT     (4 * 1024 * 1024)
#define HTTP_DRAIN_TIME_S    10

struct http_request {
	const char *method; /* "" when refused before the method was known */
	const char *path;
	const char *body; /* NUL-terminated; "" when none */
	size_t body_len;
	/* ERR_OK, or why the server refuses the request whatever its route:
	 * ERR_BODY_TOO_LARGE (the body was not kept), ERR_URI_TOO_LONG,
	 * ERR_HEADERS_TOO_LARGE, ERR_TRANSFER_ENCODING. The handler only
	 * renders the error then. */
	enum err refused;
	void *conn; /* the server's; use the accessors below (NULL when refused early) */
};

/* A query-string argument or header (case-insensitive name); borrowed for
 * the handler call, NULL when absent (always NULL when conn is NULL). */
const char *http_request_query(const struct http_request *req, const char *name);
const char *http_request_header(const struct http_request *req, const char *name);

/* The client's address as text (IPv4 or IPv6), cut to fit n bytes. */
void http_request_peer(const struct http_request *req, char *out, size_t n);

#define HTTP_MAX_HEADERS 8

struct http_response {
	int status;
	char *body; /* owned: the server frees it after sending */
	size_t len;
	const char *content_type; /* static string */
	struct {
		const char *name; /* static string */
		char value[160];
	} headers[HTTP_MAX_HEADERS];
	int nheaders;
};

/* Adds a header; value copied (and cut to fit). */
void http_response_header(struct http_response *res, const char *name, const char *value);

typedef void (*http_handler)(void *ctx, const struct http_request *req, struct http_response *res);

struct http_server;

/*
 * Listens on host:port (host a numeric IPv4/IPv6 address or "localhost")
 * and serves from its own threads until http_server_stop. Bodies over
 * body_limit bytes are drained and flagged. Returns NULL and logs why
 * when it cannot listen.
 */
struct http_server *http_server_start(const char *host, int port, size_t body_limit, http_handler handler,
				      void *ctx);
/* http_server_start, with bodies of up to route_limit bytes on the one exact path route_path
 * (borrowed for the server's life; NULL: none). */
struct http_server *http_server_start_route_limit(const char *host, int port, size_t body_limit,
						  const char *route_path, size_t route_limit,
						  http_handler handler, void *ctx);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *srv);
void http_server_stop(struct http_server *srv);

#endif
