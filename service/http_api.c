/*
 * http_api.c - see http_api.h.
 */
#include "http_api.h"

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "form.h"
#include "json_io.h"
#include "log.h"
#include "metrics.h"
#include "static_files.h"
#include "token.h"
#include "topics.h"
#include "util.h"

/* At most this many 401/403/429 lines a second; the others are counted and
 * reported by the next line logged, so a flood cannot drown the log (the
 * metrics count every refusal). */
#define REFUSAL_LINES_PER_S 10

struct http_api {
	const struct config *cfg;
	struct core *core;
	struct token_verifier *verifier; /* jwt mode only */
	char *web_root;                  /* resolved absolute path, or NULL */

	pthread_mutex_t refusal_mu; /* guards the three below */
	int64_t refusal_second;     /* monotonic second of the lines counted */
	int refusal_lines;          /* lines logged in that second */
	uint64_t refusal_skipped;   /* lines not logged since the last one logged */
};

/* What a handler gets besides the request: the authenticated user in jwt mode. */
struct ctx {
	struct http_api *api;
	const struct http_request *req;
	struct http_response *res;
	const char *user; /* NULL in open mode, else points at user_buf */
	char user_buf[ID_MAX_LEN + 1];
	const char *param; /* the {id} segment of the path (NUL-terminated copy), or NULL */
	size_t param_len;
	char param_buf[256];
	const struct route *route;      /* the route that answered, or NULL */
	enum err err;                   /* the error replied, or ERR_OK */
	const char *auth_why;           /* a 401: why the credentials were refused (static string) */
	int64_t retry_after_s;          /* a 429: the Retry-After sent */
	char acting_as[ID_MAX_LEN + 1]; /* a 403 FORBIDDEN: the user the token may not act as */
};

typedef void (*route_fn)(struct ctx *c);

static void reply_json(struct http_response *res, int status, char *body, size_t len)
{
	res->status = status;
	res->body = body;
	res->len = len;
	res->content_type = "application/json";
}

/* An error reply; message NULL means the default one of e. */
static void reply_error(struct ctx *c, enum err e, const char *message)
{
	struct http_response *res = c->res;
	c->err = e;
	size_t len;
	char *body = json_io_error(message ? message : err_message(e), err_code(e), NULL, &len);
	reply_json(res, err_http_status(e), body, len);
	if (e == ERR_UNAUTHORIZED)
		http_response_header(res, "WWW-Authenticate", "Bearer");
}

/* The reply of a core operation: its body or call, or its error (with the call it concerns). */
static void reply_core(struct ctx *c, enum err e, struct core_reply *r)
{
	struct http_response *res = c->res;
	c->err = e;
	size_t len = 0;
	char *body;
	if (e == ERR_OK && r->body) {
		reply_json(res, 200, r->body, r->len);
		r->body = NULL;
	} else if (e == ERR_OK && r->call) {
		body = json_io_call(r->call, &len);
		reply_json(res, 200, body, len);
	} else if (e == ERR_CALL_NOT_RINGING && r->call) {
		char msg[64];
		snprintf(msg, sizeof(msg), "Call is not ringing (status %s)",
			 call_status_name(r->call->status));
		body = json_io_error(msg, err_code(e), r->call, &len);
		reply_json(res, err_http_status(e), body, len);
	} else {
		reply_error(c, e, NULL);
	}
	core_reply_release(r);
	if (e == ERR_RATE_LIMITED) {
		char secs[24];
		c->retry_after_s = r->retry_after_s > 0 ? r->retry_after_s : 1;
		snprintf(secs, sizeof(secs), "%lld", (long long)c->retry_after_s);
		http_response_header(res, "Retry-After", secs);
	}
}

/*
 * Reads the named string fields of a JSON or form body. Returns 0, or -1
 * with the error reply filled in. Values are new strings: free_fields.
 */
static int parse_body(struct ctx *c, struct req_field *fields, size_t n)
{
	const char *ctype = http_request_header(c->req, "Content-Type");
	const char *bad = NULL;
	enum err e;
	int form = ctype && strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0;
	/* `curl -d '{...}'` labels JSON as a form: a form never starts with '{'. */
	if (form && c->req->body_len && c->req->body[0] == '{')
		form = 0;
	if (!form && (!ctype || strncasecmp(ctype, "application/json", 16) == 0 ||
		      strncasecmp(ctype, "application/x-www-form-urlencoded", 33) == 0)) {
		e = json_io_parse_fields(c->req->body, c->req->body_len, fields, n, &bad);
	} else if (form) {
		e = form_parse_fields(c->req->body, c->req->body_len, fields, n, &bad);
	} else {
		reply_error(c, ERR_UNSUPPORTED_MEDIA_TYPE, NULL);
		return -1;
	}
	if (e == ERR_OK)
		return 0;
	char msg[96];
	if (e == ERR_INVALID_FIELD && form) {
		snprintf(msg, sizeof(msg), "%s is not valid form-urlencoded UTF-8", bad);
		reply_error(c, ERR_BAD_JSON, msg);
	} else if (e == ERR_INVALID_FIELD) {
		snprintf(msg, sizeof(msg), "%s must be a string", bad);
		reply_error(c, e, msg);
	} else {
		reply_error(c, e, NULL);
	}
	return -1;
}

static void free_fields(struct req_field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(fields[i].value);
}

/*
 * Checks that both fields are present and valid ids. Returns 0, or -1 with
 * the error reply filled in.
 */
static int require_ids(struct ctx *c, const struct req_field *f1, const struct req_field *f2)
{
	char msg[96];
	if (!f1->value || !f2->value || !f1->len || !f2->len) {
		snprintf(msg, sizeof(msg), "%s and %s are required", f1->name, f2->name);
		reply_error(c, ERR_MISSING_FIELD, msg);
		return -1;
	}
	const char *bad = !id_is_valid(f1->value, f1->len)   ? f1->name
			  : !id_is_valid(f2->value, f2->len) ? f2->name
							     : NULL;
	if (bad) {
		snprintf(msg, sizeof(msg), "%s is not a valid id", bad);
		reply_error(c, ERR_INVALID_ID, msg);
		return -1;
	}
	return 0;
}

/* In jwt mode the acting user must be the token's user. */
static int require_self(struct ctx *c, const char *user_id)
{
	if (!c->user || strcmp(c->user, user_id) == 0)
		return 0;
	snprintf(c->acting_as, sizeof(c->acting_as), "%s", user_id);
	reply_error(c, ERR_FORBIDDEN, NULL);
	return -1;
}

static void get_users(struct ctx *c)
{
	struct core_reply r = { 0 };
	reply_core(c, core_users(c->api->core, &r), &r);
}

static void post_start(struct ctx *c)
{
	struct req_field f[] = { { "callerId", NULL, 0 }, { "receiverId", NULL, 0 } };
	if (parse_body(c, f, 2) != 0)
		return;
	if (require_ids(c, &f[0], &f[1]) == 0 && require_self(c, f[0].value) == 0) {
		struct core_reply r = { 0 };
		reply_core(c, core_call_start(c->api->core, f[0].value, f[1].value, &r), &r);
	}
	free_fields(f, 2);
}

/*
 * The optional deviceId of answer and end: a valid client id, and in jwt
 * mode one of the acting user's ({userId}.{device}). Returns 0, or -1 with
 * the error reply filled in.
 */
static int check_device(struct ctx *c, const struct req_field *device, const char *user_id)
{
	if (!device->value)
		return 0;
	if (!id_is_valid(device->value, device->len) ||
	    (c->user && !client_id_names_user(device->value, user_id))) {
		reply_error(c, ERR_INVALID_ID,
			    c->user ? "deviceId is not a client id of this user"
				    : "deviceId is not a valid id");
		return -1;
	}
	return 0;
}

static void post_answer(struct ctx *c)
{
	struct req_field f[] = { { "callId", NULL, 0 }, { "answer", NULL, 0 }, { "deviceId", NULL, 0 } };
	if (parse_body(c, f, 3) != 0)
		return;
	const char *answer = f[1].value;
	if (check_device(c, &f[2], c->user) != 0) {
		/* replied */
	} else if (!f[0].value || !answer || !f[0].len || !f[1].len) {
		reply_error(c, ERR_MISSING_FIELD, "callId and answer are required");
	} else if (strlen(answer) != f[1].len ||
		   (strcmp(answer, "ACCEPT") != 0 && strcmp(answer, "DECLINE") != 0)) {
		reply_error(c, ERR_INVALID_ANSWER, NULL);
	} else if (!id_is_valid(f[0].value, f[0].len)) {
		reply_error(c, ERR_CALL_NOT_FOUND, NULL);
	} else {
		struct core_reply r = { 0 };
		enum err e = core_call_answer_on(c->api->core, f[0].value, strcmp(answer, "ACCEPT") == 0,
						 c->user, f[2].value, &r);
		reply_core(c, e, &r);
	}
	free_fields(f, 3);
}

static void post_end(struct ctx *c)
{
	struct req_field f[] = { { "callId", NULL, 0 }, { "userId", NULL, 0 }, { "deviceId", NULL, 0 } };
	if (parse_body(c, f, 3) != 0)
		return;
	if (require_ids(c, &f[0], &f[1]) == 0 && require_self(c, f[1].value) == 0 &&
	    check_device(c, &f[2], f[1].value) == 0) {
		struct core_reply r = { 0 };
		reply_core(c, core_call_end_on(c->api->core, f[0].value, f[1].value, f[2].value, &r), &r);
	}
	free_fields(f, 3);
}

/* LiveKit's signed webhook: verified over the exact body bytes before anything is parsed. */
static void post_livekit_webhook(struct ctx *c)
{
	const struct config *cfg = c->api->cfg;
	const char *why;
	char msg[128];
	if (!cfg->livekit_api_key || !cfg->livekit_api_secret) {
		reply_error(c, ERR_TOKEN_NOT_CONFIGURED, NULL);
		return;
	}
	if (token_verify_webhook(cfg->livekit_api_key, cfg->livekit_api_secret,
				 http_request_header(c->req, "Authorization"), c->req->body, c->req->body_len,
				 (int64_t)time(NULL), &why) != 0) {
		/* Not reply_error: a webhook has no Bearer scheme to announce. */
		size_t len;
		snprintf(msg, sizeof(msg), "Webhook not signed by LiveKit (%s)", why);
		char *body = json_io_error(msg, err_code(ERR_UNAUTHORIZED), NULL, &len);
		reply_json(c->res, err_http_status(ERR_UNAUTHORIZED), body, len);
		return;
	}
	struct livekit_event e;
	if (json_io_parse_livekit_event(c->req->body, c->req->body_len, &e, &why) != 0) {
		snprintf(msg, sizeof(msg), "Not a LiveKit webhook event: %s", why);
		reply_error(c, ERR_BAD_JSON, msg);
		return;
	}
	struct core_reply r = { 0 };
	reply_core(c, core_livekit_event(c->api->core, &e, &r), &r);
	json_io_livekit_event_release(&e);
}

static void get_token(struct ctx *c)
{
	const char *room = http_request_query(c->req, "room");
	const char *id = http_request_query(c->req, "id");
	struct req_field f[] = { { "room", (char *)room, room ? strlen(room) : 0 },
				 { "id", (char *)id, id ? strlen(id) : 0 } };
	if (require_ids(c, &f[0], &f[1]) != 0 || require_self(c, id) != 0)
		return;
	struct core_reply r = { 0 };
	reply_core(c, core_token(c->api->core, room, id, &r), &r);
}

static void get_call(struct ctx *c)
{
	if (!id_is_valid(c->param, c->param_len)) {
		reply_error(c, ERR_NOT_FOUND, "Call not found");
		return;
	}
	struct core_reply r = { 0 };
	enum err e = core_call_get(c->api->core, c->param, c->user, &r);
	if (e == ERR_NOT_FOUND)
		reply_error(c, e, "Call not found");
	else
		reply_core(c, e, &r);
}

static void get_user_call(struct ctx *c)
{
	if (!id_is_valid(c->param, c->param_len)) {
		reply_error(c, ERR_INVALID_ID, "userId is not a valid id");
		return;
	}
	if (require_self(c, c->param) != 0)
		return;
	struct core_reply r = { 0 };
	reply_core(c, core_user_call(c->api->core, c->param, &r), &r);
}

#define HISTORY_LIMIT_DEFAULT 20
#define HISTORY_LIMIT_MAX     100

static void get_history(struct ctx *c)
{
	const char *user = http_request_query(c->req, "userId");
	const char *limit_s = http_request_query(c->req, "limit");
	const char *before = http_request_query(c->req, "before");
	if (!user || !*user) {
		reply_error(c, ERR_MISSING_FIELD, "userId is required");
		return;
	}
	if (!id_is_valid(user, strlen(user))) {
		reply_error(c, ERR_INVALID_ID, "userId is not a valid id");
		return;
	}
	long limit = HISTORY_LIMIT_DEFAULT;
	if (limit_s) {
		char *end;
		limit = strtol(limit_s, &end, 10);
		if (end == limit_s || *end || limit < 1 || limit > HISTORY_LIMIT_MAX) {
			reply_error(c, ERR_INVALID_FIELD, "limit must be a whole number from 1 to 100");
			return;
		}
	}
	if (before && !id_is_valid(before, strlen(before))) {
		reply_error(c, ERR_INVALID_FIELD, "before must be the id of a call");
		return;
	}
	if (require_self(c, user) != 0)
		return;
	struct core_reply r = { 0 };
	reply_core(c, core_call_history(c->api->core, user, before, (size_t)limit, &r), &r);
}

static void get_health(struct ctx *c)
{
	struct core_reply r = { 0 };
	reply_core(c, core_health(c->api->core, &r), &r);
}

static void get_ready(struct ctx *c)
{
	enum err e = core_ready(c->api->core);
	if (e != ERR_OK) {
		reply_error(c, e, NULL);
		return;
	}
	size_t len;
	char *body = json_io_object(&len, "status", "ready", NULL);
	reply_json(c->res, 200, body, len);
}

/* Compares without stopping at the first difference, so the time taken tells nothing of the token. */
static int same_secret(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;
	for (size_t i = 0; i < lb; i++)
		diff |= (unsigned char)(a[i % (la ? la : 1)] ^ b[i]);
	return diff == 0;
}

/* Prometheus text format; with METRICS_TOKEN set, only for "Authorization: Bearer <that token>". */
static void get_metrics(struct ctx *c)
{
	const char *want = c->api->cfg->metrics_token;
	if (want) {
		const char *auth = http_request_header(c->req, "Authorization");
		if (!auth || strncasecmp(auth, "Bearer ", 7) != 0 || !same_secret(auth + 7, want)) {
			c->auth_why = auth ? "not the metrics token" : "missing Authorization: Bearer header";
			reply_error(c, ERR_UNAUTHORIZED, "The metrics token is required (METRICS_TOKEN)");
			return;
		}
	}
	struct metrics_gauges g;
	core_gauges(c->api->core, &g);
	c->res->body = metrics_render(&g, &c->res->len);
	c->res->status = 200;
	c->res->content_type = "text/plain; version=0.0.4; charset=utf-8";
	http_response_header(c->res, "Cache-Control", "no-store");
}

static void get_config(struct ctx *c)
{
	const struct config *cfg = c->api->cfg;
	size_t len;
	char *obj = json_io_object(&len, "mqttWsUrl", cfg->mqtt_ws_url, "livekitUrl", cfg->livekit_url,
				   "authMode", cfg->auth_mode == AUTH_JWT ? "jwt" : "open", NULL);
	/* The one number, presenceRefreshS: how often devices refresh their presence (0: never). */
	struct sbuf sb;
	sbuf_init(&sb, len + 40);
	sbuf_add(&sb, obj, len - 1);
	sbuf_addf(&sb, ",\"presenceRefreshS\":%g}", cfg->presence_refresh_s);
	free(obj);
	char *body = sbuf_detach(&sb, &len);
	reply_json(c->res, 200, body, len);
}

static const struct route {
	const char *method;
	const char *path;
	route_fn fn;
	int needs_user; /* jwt mode: a valid user token is required */
} routes[] = {
	{ "GET", "/users", get_users, 1 },
	{ "POST", "/calls/start", post_start, 1 },
	{ "POST", "/calls/answer", post_answer, 1 },
	{ "POST", "/calls/end", post_end, 1 },
	{ "GET", "/token", get_token, 1 },
	{ "GET", "/health", get_health, 0 },
	{ "GET", "/config", get_config, 0 },
	{ "GET", "/calls/{id}", get_call, 1 },
	{ "GET", "/users/{id}/call", get_user_call, 1 },
	{ "POST", "/livekit/webhook", post_livekit_webhook, 0 },
	{ "GET", "/ready", get_ready, 0 },
	{ "GET", "/metrics", get_metrics, 0 },
	{ "GET", "/calls", get_history, 1 },
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Sets c->user from "Authorization: Bearer <token>"; -1 with a 401 reply when it is not valid. */
static int authenticate(struct ctx *c)
{
	const char *auth = http_request_header(c->req, "Authorization");
	const char *why = "missing Authorization: Bearer header";
	if (auth && strncasecmp(auth, "Bearer ", 7) == 0) {
		const char *token = auth + 7;
		while (*token == ' ')
			token++;
		if (token_verify_user(c->api->verifier, token, (int64_t)time(NULL), c->user_buf, &why) == 0) {
			c->user = c->user_buf;
			return 0;
		}
	}
	c->auth_why = why;
	char msg[128];
	snprintf(msg, sizeof(msg), "A valid user token is required (%s)", why);
	reply_error(c, ERR_UNAUTHORIZED, msg);
	return -1;
}

static void preflight(struct ctx *c)
{
	c->res->status = 204;
	http_response_header(c->res, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
	http_response_header(c->res, "Access-Control-Allow-Headers", "Content-Type, Authorization");
	http_response_header(c->res, "Access-Control-Max-Age", "600");
}

static void serve_static(struct ctx *c)
{
	char *body;
	size_t len;
	const char *type;
	if (c->api->web_root && static_files_read(c->api->web_root, c->req->path, &body, &len, &type) == 0) {
		c->res->status = 200;
		c->res->body = body;
		c->res->len = len;
		c->res->content_type = type;
		http_response_header(c->res, "Cache-Control", "no-cache");
		return;
	}
	char msg[128];
	snprintf(msg, sizeof(msg), "No route %s %.80s", c->req->method, c->req->path);
	reply_error(c, ERR_NOT_FOUND, msg);
}

/*
 * Matches path against a route path in which "{id}" stands for one
 * non-empty segment (set into c->param). 2: equal, 1: matched with a
 * parameter, 0: no match. A literal route wins over a parameter one.
 */
static int path_match(struct ctx *c, const char *pattern, const char *path)
{
	const char *brace = strstr(pattern, "{id}");
	if (!brace)
		return strcmp(pattern, path) == 0 ? 2 : 0;
	size_t head = (size_t)(brace - pattern);
	const char *tail = brace + 4;
	if (strncmp(pattern, path, head) != 0)
		return 0;
	const char *seg = path + head, *end = strchr(seg, '/');
	size_t seg_len = end ? (size_t)(end - seg) : strlen(seg);
	if (!seg_len || seg_len >= sizeof(c->param_buf) || strcmp(seg + seg_len, tail) != 0)
		return 0;
	memcpy(c->param_buf, seg, seg_len);
	c->param_buf[seg_len] = '\0';
	c->param = c->param_buf;
	c->param_len = seg_len;
	return 1;
}

/* The reply to a request the server refuses whatever its route. */
static void refuse(struct ctx *c, enum err e)
{
	char msg[128];
	const char *te;
	switch (e) {
	case ERR_BODY_TOO_LARGE:
		snprintf(msg, sizeof(msg), "Request body over %d bytes",
			 c->req->path && strcmp(c->req->path, HTTP_WEBHOOK_PATH) == 0
			     ? HTTP_WEBHOOK_BODY_LIMIT
			     : HTTP_BODY_LIMIT);
		break;
	case ERR_URI_TOO_LONG:
		snprintf(msg, sizeof(msg), "Request URI over %d bytes or with over %d query parameters",
			 HTTP_URI_LIMIT, HTTP_QUERY_ARG_LIMIT);
		break;
	case ERR_HEADERS_TOO_LARGE:
		snprintf(msg, sizeof(msg), "Request head over %d bytes or with over %d headers",
			 HTTP_HEAD_LIMIT, HTTP_HEADER_LIMIT);
		break;
	case ERR_TRANSFER_ENCODING:
		te = http_request_header(c->req, "Transfer-Encoding");
		snprintf(msg, sizeof(msg),
			 "Transfer-Encoding '%.40s' not supported: send chunked or Content-Length",
			 te ? te : "");
		break;
	default:
		reply_error(c, e, NULL);
		return;
	}
	reply_error(c, e, msg);
}

static void dispatch(struct ctx *c)
{
	const char *method = strcmp(c->req->method, "HEAD") == 0 ? "GET" : c->req->method;
	char path[256];
	snprintf(path, sizeof(path), "%s", c->req->path);
	size_t n = strlen(path);
	if (n > 1 && path[n - 1] == '/')
		path[n - 1] = '\0';

	if (c->req->refused != ERR_OK) {
		refuse(c, c->req->refused);
		return;
	}
	if (strcmp(method, "OPTIONS") == 0) {
		preflight(c);
		return;
	}
	const struct route *match = NULL;
	char allow[64] = "";
	int literal = 0;
	for (size_t i = 0; i < NROUTES; i++)
		literal |= strcmp(routes[i].path, path) == 0;
	/* Only a literal path answers 405 for another method; /calls/nope is no route for POST. */
	for (size_t i = 0; i < NROUTES; i++) {
		if (!literal && strcmp(routes[i].method, method) != 0)
			continue;
		if (path_match(c, routes[i].path, path) != (literal ? 2 : 1))
			continue;
		if (strcmp(routes[i].method, method) == 0)
			match = &routes[i];
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s%s", *allow ? ", " : "",
			 routes[i].method, strcmp(routes[i].method, "GET") == 0 ? ", HEAD" : "");
	}
	if (!match && *allow) {
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), ", OPTIONS");
		char msg[160];
		snprintf(msg, sizeof(msg), "%.16s is not allowed on %.32s (allowed: %s)", c->req->method,
			 path, allow);
		reply_error(c, ERR_METHOD_NOT_ALLOWED, msg);
		http_response_header(c->res, "Allow", allow);
		return;
	}
	if (!match) {
		if (strcmp(method, "GET") == 0) {
			serve_static(c);
		} else {
			char msg[128];
			snprintf(msg, sizeof(msg), "No route %s %.80s", c->req->method, c->req->path);
			reply_error(c, ERR_NOT_FOUND, msg);
		}
		return;
	}
	c->route = match;
	if (match->needs_user && c->api->verifier && authenticate(c) != 0)
		return;
	match->fn(c);
}

/* The kind of a 401 or 403 refusal, for callsignal_auth_failures_total. */
static enum metrics_counter auth_failure_kind(const struct ctx *c)
{
	if (c->err == ERR_FORBIDDEN)
		return M_AUTH_FORBIDDEN;
	if (c->err != ERR_UNAUTHORIZED)
		return M_AUTH_NOT_A_PARTY; /* NOT_A_PARTY, NOT_IN_CALL */
	if (c->route && c->route->fn == get_metrics)
		return M_AUTH_METRICS_TOKEN;
	if (!c->auth_why || strncmp(c->auth_why, "missing", 7) == 0)
		return M_AUTH_MISSING_TOKEN;
	return strstr(c->auth_why, "expired") ? M_AUTH_EXPIRED_TOKEN : M_AUTH_INVALID_TOKEN;
}

/*
 * The operator's line for a 401, 403 or 429: who (the token's user, or the
 * peer address when there is none), which route, why. Never the token.
 */
static void log_refusal(const struct ctx *c)
{
	struct http_api *api = c->api;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	uint64_t skipped = 0;
	pthread_mutex_lock(&api->refusal_mu);
	if (api->refusal_second != (int64_t)now.tv_sec) {
		api->refusal_second = (int64_t)now.tv_sec;
		api->refusal_lines = 0;
	}
	int quiet = api->refusal_lines >= REFUSAL_LINES_PER_S;
	if (quiet) {
		api->refusal_skipped++;
	} else {
		api->refusal_lines++;
		skipped = api->refusal_skipped;
		api->refusal_skipped = 0;
	}
	pthread_mutex_unlock(&api->refusal_mu);
	if (quiet)
		return;
	if (skipped)
		log_warn("%llu more 401/403/429 refusals were not logged (over %d lines a second)",
			 (unsigned long long)skipped, REFUSAL_LINES_PER_S);
	char peer[64];
	http_request_peer(c->req, peer, sizeof(peer));
	char who[ID_MAX_LEN + 96];
	if (c->user)
		snprintf(who, sizeof(who), "user '%s' from %s", c->user, peer);
	else
		snprintf(who, sizeof(who), "a client from %s", peer);
	const char *route = c->route ? c->route->path : c->req->path;
	if (c->err == ERR_RATE_LIMITED)
		log_warn("refused %s %s for %s: 429 %s (call starts over %d a minute; retry after %lld s)",
			 c->req->method, route, who, err_code(c->err), c->api->cfg->start_rate_per_min,
			 (long long)c->retry_after_s);
	else if (c->err == ERR_UNAUTHORIZED)
		log_warn("refused %s %s for %s: 401 %s (%s)", c->req->method, route, who, err_code(c->err),
			 c->auth_why ? c->auth_why : "no valid credentials");
	else if (c->err == ERR_FORBIDDEN)
		log_warn("refused %s %s for %s: 403 %s (the token's user may not act as '%s')",
			 c->req->method, route, who, err_code(c->err), c->acting_as);
	else
		log_warn("refused %s %s for %s: %d %s (%s)", c->req->method, route, who,
			 err_http_status(c->err), err_code(c->err), err_message(c->err));
}

/* The routes' names for the request latency metric, in route table order. */
static void register_routes(void)
{
	const char *names[NROUTES];
	for (size_t i = 0; i < NROUTES; i++)
		names[i] = routes[i].path;
	metrics_set_routes(names, NROUTES);
}

void http_api_handle(void *arg, const struct http_request *req, struct http_response *res)
{
	struct http_api *api = arg;
	struct ctx c = { .api = api, .req = req, .res = res, .user = NULL };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	dispatch(&c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	metrics_http_request(c.route ? (size_t)(c.route - routes) : NROUTES,
			     (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000);
	if (c.route && c.route->fn == post_start)
		metrics_call_start(c.err);
	if (c.err == ERR_RATE_LIMITED)
		metrics_inc(M_RATE_LIMITED);
	int status = err_http_status(c.err);
	if (c.err != ERR_OK && (status == 401 || status == 403))
		metrics_inc(auth_failure_kind(&c));
	if (c.err != ERR_OK && (status == 401 || status == 403 || status == 429))
		log_refusal(&c);
	http_response_header(res, "Access-Control-Allow-Origin", api->cfg->cors_origin);
	if (strcmp(api->cfg->cors_origin, "*") != 0)
		http_response_header(res, "Vary", "Origin");
	http_response_header(res, "X-Content-Type-Options", "nosniff");
	if (res->content_type && strcmp(res->content_type, "application/json") == 0)
		http_response_header(res, "Cache-Control", "no-store");
	/* 503 while the broker is away is expected (the bus logs the outage); other 5xx are not. */
	int alarming = res->status >= 500 && res->status != 503;
	if (alarming || log_enabled(LOG_DEBUG))
		log_msg(alarming ? LOG_WARN : LOG_DEBUG, "%s %.100s -> %d", req->method, req->path,
			res->status);
}

struct http_api *http_api_new(const struct config *cfg, struct core *core)
{
	struct http_api *api = xcalloc(1, sizeof(*api));
	pthread_mutex_init(&api->refusal_mu, NULL);
	register_routes();
	api->cfg = cfg;
	api->core = core;
	if (cfg->web_root) {
		char real[PATH_MAX];
		if (!realpath(cfg->web_root, real)) {
			log_error("cannot use the web root '%s': no such directory", cfg->web_root);
			goto fail;
		}
		api->web_root = xstrdup(real);
	}
	if (cfg->auth_mode == AUTH_JWT) {
		api->verifier =
		    token_verifier_new(cfg->auth_jwt_secret, cfg->auth_jwt_public_key_file,
				       cfg->auth_jwt_secret ? cfg->auth_jwt_secret_previous
							    : cfg->auth_jwt_public_key_previous_file);
		if (!api->verifier)
			goto fail;
	}
	return api;
fail:
	http_api_free(api);
	return NULL;
}

void http_api_free(struct http_api *api)
{
	if (!api)
		return;
	token_verifier_free(api->verifier);
	free(api->web_root);
	pthread_mutex_destroy(&api->refusal_mu);
	free(api);
}
