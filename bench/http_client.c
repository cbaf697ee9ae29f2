/* Minimal HTTP/1.1 keep-alive client and the small JSON scanners the
 * generator uses on hot paths; see http_client.h. */
#include "http_client.h"
#include "stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int http_conn_open(struct http_conn *c, uint16_t port)
{
	c->port = port;
	c->opens++;
	c->len = 0;
	c->resp_len = 0;
	c->close_after = 0;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		int e = errno;
		close(c->fd);
		c->fd = -1;
		errno = e;
		return -1;
	}
	int one = 1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	return 0;
}

void http_conn_close(struct http_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	free(c->dbuf);
	c->dbuf = NULL;
	c->len = c->cap = c->resp_len = 0;
}

int http_conn_send(struct http_conn *c, const char *method, const char *path, const char *body)
{
	char req[2048];
	int n;
	if (body)
		n = snprintf(req, sizeof req,
			     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nContent-Type: application/json\r\n"
			     "Content-Length: %zu\r\n\r\n%s",
			     method, path, c->port, strlen(body), body);
	else
		n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n", method, path,
			     c->port);
	if (n < 0 || (size_t)n >= sizeof req || c->fd < 0)
		return -1;
	/* The connection is idle (one request at a time), so the kernel buffer
	 * takes a request this small in one go. */
	ssize_t w = send(c->fd, req, (size_t)n, MSG_NOSIGNAL);
	return w == n ? 0 : -1;
}

/* Case-insensitive search for a header line "name: value" inside the head. */
static const char *header_value(const char *head, size_t head_len, const char *name)
{
	size_t nl = strlen(name);
	const char *p = memchr(head, '\n', head_len);
	const char *end = head + head_len;
	while (p && p + 1 < end) {
		p++;
		if ((size_t)(end - p) > nl + 1 && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			return v;
		}
		p = memchr(p, '\n', (size_t)(end - p));
	}
	return NULL;
}

/* Scans a chunked body starting at body_off. When it is complete, copies
 * the decoded bytes into c->dbuf and returns the raw length of the whole
 * response; returns 0 when more is needed and -1 when it is malformed. */
static long dechunk(struct http_conn *c, size_t body_off)
{
	size_t in = body_off, total = 0;
	for (int pass = 0; pass < 2; pass++) {
		in = body_off;
		size_t out = 0;
		for (;;) {
			char *crlf = memmem(c->buf + in, c->len - in, "\r\n", 2);
			if (!crlf)
				return 0;
			char *endp;
			unsigned long sz = strtoul(c->buf + in, &endp, 16);
			if (endp == c->buf + in)
				return -1;
			size_t data = (size_t)(crlf - c->buf) + 2;
			if (sz == 0) {
				char *fin = memmem(c->buf + data - 2, c->len - (data - 2), "\r\n\r\n", 4);
				if (!fin)
					return 0;
				in = (size_t)(fin + 4 - c->buf);
				break;
			}
			if (c->len < data + sz + 2)
				return 0;
			if (pass == 1)
				memcpy(c->dbuf + out, c->buf + data, sz);
			out += sz;
			in = data + sz + 2;
		}
		if (pass == 0) {
			total = out;
			free(c->dbuf);
			c->dbuf = xmalloc(total + 1);
		}
	}
	c->body = c->dbuf;
	c->body_len = total;
	return (long)in;
}

static int parse_response(struct http_conn *c)
{
	char *hend = memmem(c->buf, c->len, "\r\n\r\n", 4);
	if (!hend)
		return 0;
	size_t head_len = (size_t)(hend - c->buf);
	size_t body_off = head_len + 4;
	if (c->len < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0)
		return -1;
	c->status = atoi(c->buf + 9);
	const char *conn = header_value(c->buf, head_len, "Connection");
	c->close_after = conn && strncasecmp(conn, "close", 5) == 0;
	const char *te = header_value(c->buf, head_len, "Transfer-Encoding");
	if (te && strncasecmp(te, "chunked", 7) == 0) {
		long r = dechunk(c, body_off);
		if (r <= 0)
			return (int)r;
		c->resp_len = (size_t)r;
		return 1;
	}
	const char *cl = header_value(c->buf, head_len, "Content-Length");
	size_t blen = cl ? strtoul(cl, NULL, 10) : 0;
	if (c->len < body_off + blen)
		return 0;
	c->body = c->buf + body_off;
	c->body_len = blen;
	c->resp_len = body_off + blen;
	return 1;
}

int http_conn_read(struct http_conn *c)
{
	if (c->resp_len)
		return 1;
	for (;;) {
		if (c->cap - c->len < 4096) {
			c->cap = c->cap ? c->cap * 2 : 16384;
			c->buf = xrealloc(c->buf, c->cap);
		}
		size_t room = c->cap - c->len - 1;
		ssize_t r = recv(c->fd, c->buf + c->len, room, 0);
		if (r > 0) {
			c->len += (size_t)r;
			/* A short read drained the socket: no need for the recv that
			 * would say EAGAIN (epoll is level-triggered). */
			if ((size_t)r < room)
				break;
			continue;
		}
		if (r == 0)
			return c->len ? parse_response(c) == 1 ? 1 : -1 : -1;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			break;
		return -1;
	}
	return parse_response(c);
}

void http_conn_consume(struct http_conn *c)
{
	if (!c->resp_len)
		return;
	memmove(c->buf, c->buf + c->resp_len, c->len - c->resp_len);
	c->len -= c->resp_len;
	c->resp_len = 0;
	c->body = NULL;
	c->body_len = 0;
	if (c->close_after) {
		close(c->fd);
		http_conn_open(c, c->port);
	}
}

static int wait_response(struct http_conn *c, int timeout_ms)
{
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		int r = http_conn_read(c);
		if (r != 0)
			return r;
		uint64_t now = now_ns();
		if (now >= deadline)
			return -1;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		poll(&pfd, 1, (int)((deadline - now) / 1000000u) + 1);
	}
}

int http_conn_request(struct http_conn *c, const char *method, const char *path, const char *body,
		      int timeout_ms)
{
	http_conn_consume(c);
	for (int attempt = 0; attempt < 2; attempt++) {
		if (c->fd < 0 && http_conn_open(c, c->port) != 0)
			return -1;
		if (http_conn_send(c, method, path, body) == 0) {
			int r = wait_response(c, timeout_ms);
			if (r == 1)
				return c->status;
		}
		/* A keep-alive connection the server closed while idle fails on
		 * first use; start over on a fresh one. */
		close(c->fd);
		c->fd = -1;
		c->len = 0;
	}
	return -1;
}

int json_value_is_uuid(const char *v, size_t n)
{
	if (n != 36)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char ch = v[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (ch != '-')
				return 0;
		} else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f'))) {
			return 0;
		}
	}
	return 1;
}

static const char *skip_space(const char *q, const char *end)
{
	while (q < end && (*q == ' ' || *q == '\t' || *q == '\n' || *q == '\r'))
		q++;
	return q;
}

/* The value after the next "key": from *cursor on (which moves past the
 * key), or NULL when the key does not occur again. */
static const char *next_value(const char **cursor, const char *end, const char *key, const char **value)
{
	char pat[64];
	int pl = snprintf(pat, sizeof pat, "\"%s\"", key);
	while ((*cursor = memmem(*cursor, (size_t)(end - *cursor), pat, (size_t)pl)) != NULL) {
		*cursor += pl;
		const char *q = skip_space(*cursor, end);
		if (q < end && *q == ':') {
			*value = skip_space(q + 1, end);
			return *value;
		}
	}
	return NULL;
}

int json_find_string(const char *json, size_t len, const char *key, char *out, size_t outsz,
		     int (*accept)(const char *value, size_t n))
{
	const char *p = json, *end = json + len, *q;
	while (next_value(&p, end, key, &q)) {
		if (q >= end || *q != '"')
			continue;
		q++;
		const char *e = memchr(q, '"', (size_t)(end - q));
		if (!e)
			return -1;
		size_t n = (size_t)(e - q);
		if (accept && !accept(q, n))
			continue;
		if (n >= outsz)
			return -1;
		memcpy(out, q, n);
		out[n] = '\0';
		return (int)n;
	}
	return -1;
}

int json_find_long(const char *json, size_t len, const char *key, long *out)
{
	const char *p = json, *end = json + len, *q;
	while (next_value(&p, end, key, &q)) {
		if (q < end && (*q == '-' || (*q >= '0' && *q <= '9'))) {
			*out = strtol(q, NULL, 10);
			return 0;
		}
	}
	return -1;
}

size_t count_occurrences(const char *hay, size_t len, const char *needle)
{
	size_t nl = strlen(needle), count = 0;
	const char *p = hay, *end = hay + len;
	while ((p = memmem(p, (size_t)(end - p), needle, nl)) != NULL) {
		count++;
		p += nl;
	}
	return count;
}
