/*
 * http_server.c - see http_server.h. libmicrohttpd runs a small pool of
 * epoll threads; each handler call runs on one of them.
 *
 * Besides collecting requests it bounds what one request may cost: on_uri
 * answers a URI over the limits before libmicrohttpd parses its query,
 * on_request a head over the limits before libmicrohttpd builds a response
 * in what is left of its buffer, refuse_at_once a transfer coding it
 * cannot decode, and an oversized body is drained (bounded) before its 413
 * so the client reads it.
 */
#include "http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "util.h"

#define THREADS          8 /* a request waiting for Redis holds up only its own thread's connections */
#define CONNECTION_LIMIT 20000
#define IDLE_TIMEOUT_S   120

struct http_server {
	struct MHD_Daemon *daemon;
	http_handler handler;
	void *ctx;
	size_t body_limit;
	const char *route_path; /* a path with a limit of its own, or NULL */
	size_t route_limit;
	int port;
};

struct pending {
	struct sbuf body;
	enum err refused;
	size_t dropped;           /* bytes of an oversized body read and thrown away */
	struct timespec drain_t0; /* when throwing away began */
};

/*
 * The connection context of a request already answered on its socket (see
 * answer_on_socket): never freed, only compared against.
 */
static struct pending answered_early;

const char *http_request_query(const struct http_request *req, const char *name)
{
	return req->conn ? MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name) : NULL;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
	return req->conn ? MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name) : NULL;
}

void http_request_peer(const struct http_request *req, char *out, size_t n)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = info ? info->client_addr : NULL;
	snprintf(out, n, "an unknown address");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)n);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)n);
}

void http_response_header(struct http_response *res, const char *name, const char *value)
{
	if (res->nheaders >= HTTP_MAX_HEADERS)
		return;
	res->headers[res->nheaders].name = name;
	snprintf(res->headers[res->nheaders].value, sizeof(res->headers[0].value), "%s", value);
	res->nheaders++;
}

static enum MHD_Result send_response(struct MHD_Connection *conn, struct http_response *res)
{
	struct MHD_Response *r;
	if (res->body)
		r = MHD_create_response_from_buffer(res->len, res->body, MHD_RESPMEM_MUST_FREE);
	else
		r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(res->body);
		return MHD_NO;
	}
	res->body = NULL; /* MHD owns it now */
	if (res->content_type)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, res->content_type);
	for (int i = 0; i < res->nheaders; i++)
		MHD_add_response_header(r, res->headers[i].name, res->headers[i].value);
	enum MHD_Result ret = MHD_queue_response(conn, (unsigned int)res->status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Asks the handler for the reply to a request refused as e, closing the connection after it. */
static void render_refusal(struct http_server *srv, const char *method, const char *path, enum err e,
			   void *conn, struct http_response *res)
{
	struct http_request req = { method, path, "", 0, e, conn };
	res->status = 500;
	srv->handler(srv->ctx, &req, res);
	http_response_header(res, MHD_HTTP_HEADER_CONNECTION, "close");
}

/*
 * Writes res to the socket of conn itself and shuts the socket down, for a
 * request libmicrohttpd cannot be trusted to answer: 0.9.75 stores every
 * query parameter and header in the connection's 32 KiB memory pool and,
 * when the pool runs out while parsing the query (about 500 parameters,
 * even empty ones), queues a 431 it never sends, leaving the client
 * waiting until it gives up; when the request fits but leaves too little
 * room for the response's headers (about 440 small headers), it closes the
 * connection without an answer. The reply is small and the socket fresh,
 * so one non-blocking send takes it whole; the shutdown makes
 * libmicrohttpd see the connection end and free it.
 */
static void answer_on_socket(struct MHD_Connection *conn, struct http_response *res)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct sbuf out;
	sbuf_init(&out, 512 + res->len);
	const char *reason = MHD_get_reason_phrase_for((unsigned int)res->status);
	sbuf_addf(&out, "HTTP/1.1 %d %s\r\n", res->status, reason ? reason : "");
	if (res->content_type)
		sbuf_addf(&out, "Content-Type: %s\r\n", res->content_type);
	for (int i = 0; i < res->nheaders; i++)
		sbuf_addf(&out, "%s: %s\r\n", res->headers[i].name, res->headers[i].value);
	sbuf_addf(&out, "Content-Length: %zu\r\n\r\n", res->len);
	sbuf_add(&out, res->body ? res->body : "", res->len);
	if (info) {
		ssize_t n = send(info->connect_fd, out.buf, out.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 || (size_t)n != out.len)
			log_warn("http: the %d reply to a refused request did not fit the socket",
				 res->status);
		shutdown(info->connect_fd, SHUT_RDWR);
	}
	sbuf_release(&out);
	free(res->body);
	res->body = NULL;
}

/*
 * libmicrohttpd's URI log callback: sees the request URI before the query
 * is parsed. A URI over the limits is answered here (see answer_on_socket);
 * the returned context then tells on_request to drop the connection.
 */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct http_server *srv = cls;
	size_t len = strlen(uri);
	const char *query = strchr(uri, '?');
	size_t args = 0;
	for (const char *q = query; q; q = strchr(q + 1, '&'))
		args++;
	if (len <= HTTP_URI_LIMIT && args <= HTTP_QUERY_ARG_LIMIT)
		return NULL;
	char path[128];
	size_t plen = query ? (size_t)(query - uri) : len;
	snprintf(path, sizeof(path), "%.*s", (int)(plen < 100 ? plen : 100), uri);
	log_warn("http: refused a request URI of %zu bytes with %zu query parameters", len, args);
	struct http_response res = { 0 };
	render_refusal(srv, "", path, ERR_URI_TOO_LONG, NULL, &res);
	answer_on_socket(conn, &res);
	return &answered_early;
}

/* Whether the request head is over the limits (then it may leave no room for the response). */
static int head_too_large(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *info =
	    MHD_get_connection_info(conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	return (info && info->header_size > HTTP_HEAD_LIMIT) ||
	       MHD_get_connection_values(conn, MHD_HEADER_KIND, NULL, NULL) > HTTP_HEADER_LIMIT;
}

static double seconds_since(const struct timespec *t0)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Starts throwing the body away: the connection may idle at most the drain time from now on. */
static void start_draining(struct MHD_Connection *conn, struct pending *p)
{
	p->refused = ERR_BODY_TOO_LARGE;
	clock_gettime(CLOCK_MONOTONIC, &p->drain_t0);
	MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned int)HTTP_DRAIN_TIME_S);
}

/*
 * First call of a request, headers read, body not yet: decides whether to
 * refuse it at once. Returns 1 to answer now, 0 to go on reading the body.
 */
static int refuse_at_once(struct MHD_Connection *conn, struct pending *p, size_t limit)
{
	/* libmicrohttpd decodes only "chunked"; with any other coding it would
	 * wait for the connection to close to find the body's end. */
	const char *te =
	    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if (te && strcasecmp(te, "chunked") != 0) {
		p->refused = ERR_TRANSFER_ENCODING;
		return 1;
	}
	const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	unsigned long long announced = cl ? strtoull(cl, NULL, 10) : 0;
	if (announced <= limit)
		return 0;
	/* A client waiting for "100 Continue" has sent no body: answer now.
	 * One announcing more than we would drain gets the answer now too,
	 * though it may see the connection reset before reading it. Any
	 * other is drained first, so that it reads the 413 (lingering close). */
	const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
	start_draining(conn, p);
	return (expect && strcasecmp(expect, "100-continue") == 0) || announced > HTTP_DRAIN_LIMIT;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http_server *srv = cls;
	struct pending *p = *con_cls;
	(void)version;
	size_t limit =
	    srv->route_path && strcmp(url, srv->route_path) == 0 ? srv->route_limit : srv->body_limit;

	if (p == &answered_early)
		return MHD_NO;
	if (!p && head_too_large(conn)) {
		struct http_response res = { 0 };
		log_warn("http: refused %s %.100s: request head over %d bytes or %d headers", method, url,
			 HTTP_HEAD_LIMIT, HTTP_HEADER_LIMIT);
		render_refusal(srv, method, url, ERR_HEADERS_TOO_LARGE, NULL, &res);
		answer_on_socket(conn, &res);
		*con_cls = &answered_early;
		return MHD_NO;
	}
	if (!p) {
		p = xcalloc(1, sizeof(*p));
		sbuf_init(&p->body, 0);
		*con_cls = p;
		if (!refuse_at_once(conn, p, limit))
			return MHD_YES;
	}
	if (*upload_data_size) {
		/* An unannounced oversized body (chunked) is drained like an announced one. */
		if (p->refused == ERR_OK && p->body.len + *upload_data_size <= limit)
			sbuf_add(&p->body, upload_data, *upload_data_size);
		else if (p->refused == ERR_OK)
			start_draining(conn, p);
		p->dropped += p->refused != ERR_OK ? *upload_data_size : 0;
		*upload_data_size = 0;
		if (p->dropped > HTTP_DRAIN_LIMIT ||
		    (p->refused != ERR_OK && seconds_since(&p->drain_t0) > HTTP_DRAIN_TIME_S)) {
			log_warn("http: dropped the connection of %s %.100s after draining %zu bytes of an "
				 "oversized body",
				 method, url, p->dropped);
			return MHD_NO;
		}
		return MHD_YES;
	}

	struct http_response res = { 0 };
	if (p->refused != ERR_OK) {
		render_refusal(srv, method, url, p->refused, conn, &res);
		return send_response(conn, &res);
	}
	struct http_request req = { method, url, p->body.buf, p->body.len, ERR_OK, conn };
	res.status = 500;
	srv->handler(srv->ctx, &req, &res);
	return send_response(conn, &res);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct pending *p = *con_cls;
	(void)cls;
	(void)conn;
	(void)toe;
	if (p && p != &answered_early) {
		sbuf_release(&p->body);
		free(p);
	}
	*con_cls = NULL;
}

static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t n = strlen(msg);
	if (n && msg[n - 1] == '\n')
		msg[n - 1] = '\0';
	log_warn("http: %s", msg);
}

struct http_server *http_server_start(const char *host, int port, size_t body_limit, http_handler handler,
				      void *ctx)
{
	return http_server_start_route_limit(host, port, body_limit, NULL, 0, handler, ctx);
}

struct http_server *http_server_start_route_limit(const char *host, int port, size_t body_limit,
						  const char *route_path, size_t route_limit,
						  http_handler handler, void *ctx)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
	if (strcmp(host, "localhost") == 0)
		host = "127.0.0.1";
	struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
	} else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		flags |= MHD_USE_IPv6;
	} else {
		log_error("cannot listen on '%s': not a numeric IPv4 or IPv6 address", host);
		return NULL;
	}

	struct http_server *srv = xcalloc(1, sizeof(*srv));
	srv->handler = handler;
	srv->ctx = ctx;
	srv->body_limit = body_limit;
	srv->route_path = route_path;
	srv->route_limit = route_limit;
	srv->daemon = MHD_start_daemon(
	    flags, (uint16_t)port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, srv,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)THREADS,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
	    MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv, MHD_OPTION_END);
	if (!srv->daemon) {
		log_error("cannot listen on %s port %d (in use, or not an address of this machine)", host,
			  port);
		free(srv);
		return NULL;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
	srv->port = info ? info->port : port;
	return srv;
}

int http_server_port(const struct http_server *srv)
{
	return srv->port;
}

void http_server_stop(struct http_server *srv)
{
	if (!srv)
		return;
	MHD_stop_daemon(srv->daemon);
	free(srv);
}
