/*
 * json_io.c - see json_io.h. Input goes through jansson (strict: UTF-8
 * checked, no NUL in strings); output is written directly into a buffer,
 * which is several times faster than building jansson trees for replies.
 */
#include "json_io.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topics.h"

void json_io_init(void)
{
	json_set_alloc_funcs(xmalloc, free);
}

static int text_ok(const char *s, size_t max)
{
	return strlen(s) <= max;
}

int json_io_parse_user(const char *payload, size_t len, struct user_info *out, const char **why)
{
	json_error_t jerr;
	json_t *root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	int rc = -1;
	if (!root) {
		*why = "not valid JSON";
		return -1;
	}
	json_t *id = json_object_get(root, "id");
	json_t *name = json_object_get(root, "name");
	json_t *location = json_object_get(root, "location");
	if (!json_is_object(root)) {
		*why = "not a JSON object";
	} else if (!json_is_string(id) || !id_is_valid(json_string_value(id), json_string_length(id))) {
		*why = "id missing or not a valid id";
	} else if (!json_is_string(name) || !text_ok(json_string_value(name), USER_TEXT_MAX)) {
		*why = "name missing, not a string or too long";
	} else if (location && !json_is_null(location) &&
		   (!json_is_string(location) || !text_ok(json_string_value(location), USER_TEXT_MAX))) {
		*why = "location not a string or too long";
	} else {
		out->id = xstrdup(json_string_value(id));
		out->name = xstrdup(json_string_value(name));
		out->location = xstrdup(json_is_string(location) ? json_string_value(location) : "");
		rc = 0;
	}
	json_decref(root);
	return rc;
}

static int parse_user_object(json_t *obj, struct user_info *out)
{
	const char *why;
	char *text = json_dumps(obj, JSON_COMPACT);
	int rc = text ? json_io_parse_user(text, strlen(text), out, &why) : -1;
	free(text);
	return rc;
}

/* A timestamp member: 0 when absent, -1 when malformed. */
static int parse_time(json_t *root, const char *name, int64_t *ms)
{
	json_t *v = json_object_get(root, name);
	*ms = 0;
	if (!v)
		return 0;
	return json_is_string(v) ? iso_time_parse(json_string_value(v), ms) : -1;
}

int json_io_parse_call(const char *payload, size_t len, struct call *out, const char **why)
{
	static const char *const statuses[] = {
		"DIALLING", "ONGOING", "ENDED", "DECLINED", "MISSED", "ERROR"
	};
	json_error_t jerr;
	json_t *root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
	memset(out, 0, sizeof(*out));
	if (!root || !json_is_object(root)) {
		json_decref(root);
		*why = "not a JSON object";
		return -1;
	}
	json_t *id = json_object_get(root, "id"), *status = json_object_get(root, "status");
	json_t *rev = json_object_get(root, "revision"), *err_msg = json_object_get(root, "errMsg");
	int rc = -1, st = -1;
	for (int i = 0; status && json_is_string(status) && i < 6; i++)
		if (strcmp(json_string_value(status), statuses[i]) == 0)
			st = i;
	if (!json_is_string(id) || json_string_length(id) != CALL_ID_LEN ||
	    !id_is_valid(json_string_value(id), CALL_ID_LEN)) {
		*why = "id missing or not a call id";
	} else if (st < 0) {
		*why = "status missing or unknown";
	} else if (!json_is_integer(rev) || json_integer_value(rev) < 1) {
		*why = "revision missing or not a positive integer";
	} else if (err_msg &&
		   (!json_is_string(err_msg) || !text_ok(json_string_value(err_msg), USER_TEXT_MAX * 2))) {
		*why = "errMsg not a string or too long";
	} else if (!json_is_object(json_object_get(root, "caller")) ||
		   parse_user_object(json_object_get(root, "caller"), &out->party[PARTY_CALLER]) != 0 ||
		   !json_is_object(json_object_get(root, "receiver")) ||
		   parse_user_object(json_object_get(root, "receiver"), &out->party[PARTY_RECEIVER]) != 0) {
		*why = "caller or receiver missing or not a valid User";
	} else if (parse_time(root, "createdAt", &out->created_at) != 0 || !out->created_at ||
		   parse_time(root, "answeredAt", &out->answered_at) != 0 ||
		   parse_time(root, "endedAt", &out->ended_at) != 0 ||
		   parse_time(root, "ringDeadline", &out->ring_deadline) != 0 ||
		   (st == CALL_DIALLING && !out->ring_deadline)) {
		*why = "a timestamp is missing or not ISO-8601 UTC with milliseconds";
	} else {
		snprintf(out->id, sizeof(out->id), "%s", json_string_value(id));
		out->status = (enum call_status)st;
		out->revision = (int64_t)json_integer_value(rev);
		out->err_msg = err_msg ? xstrdup(json_string_value(err_msg)) : NULL;
		rc = 0;
	}
	if (rc != 0)
		call_release(out);
	json_decref(root);
	return rc;
}

enum err json_io_parse_fields(const char *body, size_t len, struct req_field *fields, size_t n,
			      const char **bad_field)
{
	json_error_t jerr;
	for (size_t i = 0; i < n; i++) {
		fields[i].value = NULL;
		fields[i].len = 0;
	}
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
	if (!root || !json_is_object(root)) {
		json_decref(root);
		return ERR_BAD_JSON;
	}
	enum err e = ERR_OK;
	for (size_t i = 0; i < n && e == ERR_OK; i++) {
		json_t *v = json_object_get(root, fields[i].name);
		if (!v || json_is_null(v))
			continue;
		if (!json_is_string(v)) {
			*bad_field = fields[i].name;
			e = ERR_INVALID_FIELD;
			break;
		}
		fields[i].len = json_string_length(v);
		fields[i].value = xstrndup(json_string_value(v), fields[i].len);
	}
	if (e != ERR_OK)
		for (size_t i = 0; i < n; i++) {
			free(fields[i].value);
			fields[i].value = NULL;
		}
	json_decref(root);
	return e;
}

void json_io_add_string(struct sbuf *sb, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	sbuf_addc(sb, '"');
	const char *run = s;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		sbuf_add(sb, run, (size_t)(s - run));
		run = s + 1;
		switch (c) {
		case '"':
			sbuf_add(sb, "\\\"", 2);
			break;
		case '\\':
			sbuf_add(sb, "\\\\", 2);
			break;
		case '\n':
			sbuf_add(sb, "\\n", 2);
			break;
		case '\r':
			sbuf_add(sb, "\\r", 2);
			break;
		case '\t':
			sbuf_add(sb, "\\t", 2);
			break;
		default: {
			char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			sbuf_add(sb, u, 6);
		}
		}
	}
	sbuf_add(sb, run, (size_t)(s - run));
	sbuf_addc(sb, '"');
}

static void add_user(struct sbuf *sb, const struct user_info *u)
{
	sbuf_adds(sb, "{\"id\":");
	json_io_add_string(sb, u->id);
	sbuf_adds(sb, ",\"name\":");
	json_io_add_string(sb, u->name);
	sbuf_adds(sb, ",\"location\":");
	json_io_add_string(sb, u->location);
	sbuf_addc(sb, '}');
}

static void add_time(struct sbuf *sb, const char *name, int64_t ms)
{
	if (!ms)
		return;
	char when[ISO_TIME_LEN];
	iso_time_format(ms, when);
	sbuf_addf(sb, ",\"%s\":\"%s\"", name, when);
}

static void add_call(struct sbuf *sb, const struct call *call)
{
	sbuf_adds(sb, "{\"id\":");
	json_io_add_string(sb, call->id);
	sbuf_adds(sb, ",\"caller\":");
	add_user(sb, &call->party[PARTY_CALLER]);
	sbuf_adds(sb, ",\"receiver\":");
	add_user(sb, &call->party[PARTY_RECEIVER]);
	sbuf_addf(sb, ",\"status\":\"%s\"", call_status_name(call->status));
	if (call->err_msg) {
		sbuf_adds(sb, ",\"errMsg\":");
		json_io_add_string(sb, call->err_msg);
	}
	add_time(sb, "createdAt", call->created_at);
	add_time(sb, "answeredAt", call->answered_at);
	add_time(sb, "endedAt", call->ended_at);
	add_time(sb, "ringDeadline", call->ring_deadline);
	sbuf_addf(sb, ",\"revision\":%lld}", (long long)call->revision);
}

char *json_io_call(const struct call *call, size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, 512);
	add_call(&sb, call);
	return sbuf_detach(&sb, len);
}

char *json_io_event(enum event_type type, const struct call *call, size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, 640);
	sbuf_addf(&sb, "{\"id\":\"%s:%lld\",\"type\":\"%s\",\"call\":", call->id, (long long)call->revision,
		  event_type_name(type));
	add_call(&sb, call);
	sbuf_addc(&sb, '}');
	return sbuf_detach(&sb, len);
}

char *json_io_event_around(enum event_type type, const struct call *call, const char *call_json,
			   size_t call_len, size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, call_len + 112);
	sbuf_addf(&sb, "{\"id\":\"%s:%lld\",\"type\":\"%s\",\"call\":", call->id, (long long)call->revision,
		  event_type_name(type));
	sbuf_add(&sb, call_json, call_len);
	sbuf_addc(&sb, '}');
	return sbuf_detach(&sb, len);
}

char *json_io_users(const struct presence *p, size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, 64 + presence_count(p) * 64);
	sbuf_addc(&sb, '[');
	for (const struct presence_user *u = p->head; u; u = u->next) {
		if (u != p->head)
			sbuf_addc(&sb, ',');
		add_user(&sb, &u->info);
	}
	sbuf_addc(&sb, ']');
	return sbuf_detach(&sb, len);
}

char *json_io_error(const char *message, const char *code, const struct call *call, size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, 128);
	sbuf_adds(&sb, "{\"message\":");
	json_io_add_string(&sb, message);
	sbuf_adds(&sb, ",\"error\":");
	json_io_add_string(&sb, code);
	if (call) {
		sbuf_adds(&sb, ",\"call\":");
		add_call(&sb, call);
	}
	sbuf_addc(&sb, '}');
	return sbuf_detach(&sb, len);
}

char *json_io_health(int broker_up, size_t users, size_t calls, size_t live_calls, size_t outbox, size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, 160);
	sbuf_addf(&sb,
		  "{\"status\":\"%s\",\"broker\":\"%s\",\"users\":%zu,\"calls\":%zu,\"liveCalls\":%zu,"
		  "\"outbox\":%zu}",
		  broker_up ? "ok" : "degraded", broker_up ? "connected" : "disconnected", users, calls,
		  live_calls, outbox);
	return sbuf_detach(&sb, len);
}

char *json_io_object(size_t *len, const char *name, const char *value, ...)
{
	struct sbuf sb;
	va_list ap;
	sbuf_init(&sb, 128);
	sbuf_addc(&sb, '{');
	va_start(ap, value);
	for (int first = 1; name; first = 0) {
		if (!first)
			sbuf_addc(&sb, ',');
		json_io_add_string(&sb, name);
		sbuf_addc(&sb, ':');
		if (value)
			json_io_add_string(&sb, value);
		else
			sbuf_adds(&sb, "null");
		name = va_arg(ap, const char *);
		if (name)
			value = va_arg(ap, const char *);
	}
	va_end(ap);
	sbuf_addc(&sb, '}');
	return sbuf_detach(&sb, len);
}

char *json_io_calls(const struct call *calls, size_t n, size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, 64 + n * 512);
	sbuf_addc(&sb, '[');
	for (size_t i = 0; i < n; i++) {
		if (i)
			sbuf_addc(&sb, ',');
		add_call(&sb, &calls[i]);
	}
	sbuf_addc(&sb, ']');
	return sbuf_detach(&sb, len);
}

char *json_io_webhook_call(const char *event, int64_t now_ms, const struct call *call, const char *call_json,
			   size_t call_len, size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, call_len + 160);
	sbuf_addf(&sb, "{\"id\":\"%s:%lld:%s\",\"event\":\"%s\",\"createdAt\":%lld,\"call\":", call->id,
		  (long long)call->revision, event, event, (long long)(now_ms / 1000));
	sbuf_add(&sb, call_json, call_len);
	if (!call_status_is_live(call->status)) {
		int64_t ms = call->answered_at && call->ended_at > call->answered_at
				 ? call->ended_at - call->answered_at
				 : 0;
		sbuf_addf(&sb, ",\"duration\":%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
	}
	sbuf_addc(&sb, '}');
	return sbuf_detach(&sb, len);
}

char *json_io_webhook_presence(const char *id, const char *event, int64_t now_ms, const char *user_id,
			       const struct user_info *user, size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, 256);
	sbuf_adds(&sb, "{\"id\":");
	json_io_add_string(&sb, id);
	sbuf_addf(&sb, ",\"event\":\"%s\",\"createdAt\":%lld,\"user\":", event, (long long)(now_ms / 1000));
	if (user) {
		add_user(&sb, user);
	} else {
		sbuf_adds(&sb, "{\"id\":");
		json_io_add_string(&sb, user_id);
		sbuf_addc(&sb, '}');
	}
	sbuf_addc(&sb, '}');
	return sbuf_detach(&sb, len);
}

char *json_io_health_webhooks(char *body, size_t *len, uint64_t delivered, uint64_t failed, uint64_t rejected,
			      uint64_t overflowed, size_t queued)
{
	struct sbuf sb;
	sbuf_init(&sb, *len + 128);
	sbuf_add(&sb, body, *len ? *len - 1 : 0); /* without the closing brace */
	free(body);
	sbuf_addf(&sb,
		  ",\"webhooks\":{\"delivered\":%llu,\"failed\":%llu,\"rejected\":%llu,\"overflowed\":%llu,"
		  "\"queued\":%zu}}",
		  (unsigned long long)delivered, (unsigned long long)failed, (unsigned long long)rejected,
		  (unsigned long long)overflowed, queued);
	return sbuf_detach(&sb, len);
}
