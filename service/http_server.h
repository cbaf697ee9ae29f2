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

struct http_request {
	const char *method;
	const char *path;
	const char *body; /* NUL-terminated; "" when none */
	size_t body_len;
	int body_too_large; /* the body was over the limit and was not kept */
	void *conn;         /* the server's; use the accessors below */
};

/* A query-string argument or header (case-insensitive name); borrowed for
 * the handler call, NULL when absent. */
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
 * body_limit bytes are dropped and flagged. Returns NULL and logs why
 * when it cannot listen.
 */
struct http_server *http_server_start(const char *host, int port, size_t body_limit, http_handler handler,
				      void *ctx);
/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *srv);
void http_server_stop(struct http_server *srv);

#endif
