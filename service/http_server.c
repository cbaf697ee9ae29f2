/*
 * http_server.c - see http_server.h. libmicrohttpd runs a small pool of
 * epoll threads; each handler call runs on one of them.
 */
#include "http_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"
#include "util.h"

#define THREADS          2
#define CONNECTION_LIMIT 20000
#define IDLE_TIMEOUT_S   120
#define DROP_LIMIT       (1024 * 1024) /* past this an oversized upload is cut off */

struct http_server {
	struct MHD_Daemon *daemon;
	http_handler handler;
	void *ctx;
	size_t body_limit;
	int port;
};

struct pending {
	struct sbuf body;
	int too_large;
	size_t dropped; /* bytes of an oversized body read and thrown away */
};

const char *http_request_query(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size,
				  void **con_cls)
{
	struct http_server *srv = cls;
	struct pending *p = *con_cls;
	(void)version;

	if (!p) {
		p = xcalloc(1, sizeof(*p));
		sbuf_init(&p->body, 0);
		*con_cls = p;
		/* Refuse an announced oversized body before reading it. */
		const char *cl =
		    MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > srv->body_limit)
			p->too_large = 1;
		else
			return MHD_YES;
	}
	if (*upload_data_size) {
		/* An unannounced oversized body (chunked) is read and dropped up
		 * to a bound, so the client still gets its 413 at the end. */
		if (!p->too_large && p->body.len + *upload_data_size <= srv->body_limit)
			sbuf_add(&p->body, upload_data, *upload_data_size);
		else
			p->too_large = 1;
		p->dropped += p->too_large ? *upload_data_size : 0;
		*upload_data_size = 0;
		return p->dropped > DROP_LIMIT ? MHD_NO : MHD_YES;
	}

	struct http_request req = { method, url, p->body.buf, p->body.len, p->too_large, conn };
	struct http_response res = { 0 };
	res.status = 500;
	srv->handler(srv->ctx, &req, &res);
	if (p->too_large)
		http_response_header(&res, MHD_HTTP_HEADER_CONNECTION, "close");
	return send_response(conn, &res);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct pending *p = *con_cls;
	(void)cls;
	(void)conn;
	(void)toe;
	if (p) {
		sbuf_release(&p->body);
		free(p);
		*con_cls = NULL;
	}
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
	srv->daemon = MHD_start_daemon(
	    flags, (uint16_t)port, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, srv,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)THREADS,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)IDLE_TIMEOUT_S, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
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
