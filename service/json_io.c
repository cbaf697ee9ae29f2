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

/* An actor member (absent: none); -1 when malformed. */
static int parse_actor(json_t *root, const char *name, struct actor *a)
{
	json_t *v = json_object_get(root, name);
	if (!v)
		return 0;
	json_t *user = json_object_get(v, "userId"), *device = json_object_get(v, "deviceId");
	if (!json_is_object(v) || !json_is_string(user) ||
	    !id_is_valid(json_string_value(user), json_string_length(user)) ||
	    (device && (!json_is_string(device) ||
			!id_is_valid(json_string_value(device), json_string_length(device)))))
		return -1;
	actor_set(a, json_string_value(user), device ? json_string_value(device) : NULL);
	return 0;
}

static int parse_media_joined(json_t *root, int64_t at[2])
{
	json_t *v = json_object_get(root, "mediaJoinedAt");
	if (!v)
		return 0;
	if (!json_is_object(v))
		return -1;
	return parse_time(v, "caller", &at[PARTY_CALLER]) | parse_time(v, "receiver", &at[PARTY_RECEIVER]);
}

static int parse_end_reason(json_t *root, enum end_reason *r)
{
	json_t *v = json_object_get(root, "endReason");
	*r = END_NONE;
	if (!v)
		return 0;
	for (int i = END_HANGUP; i <= END_MEDIA_ENDED; i++)
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), end_reason_name((enum end_reason)i)) == 0) {
			*r = (enum end_reason)i;
			return 0;
		}
	return -1;
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
	} else if (parse_actor(root, "answeredBy", &out->answered_by) != 0 ||
		   parse_actor(root, "endedBy", &out->ended_by) != 0) {
		*why = "answeredBy or endedBy not {userId, deviceId?} with valid ids";
	} else if (parse_media_joined(root, out->media_joined_at) != 0) {
		*why = "mediaJoinedAt not {caller?, receiver?} of ISO-8601 UTC timestamps";
	} else if (parse_end_reason(root, &out->end_reason) != 0) {
		*why = "endReason unknown";
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

/* A string member of obj: 0 with *out a new string (NULL when absent or obj NULL), -1 when not a string. */
static int string_member(json_t *obj, const char *name, char **out)
{
	json_t *v = obj ? json_object_get(obj, name) : NULL;
	*out = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return -1;
	*out = xstrndup(json_string_value(v), json_string_length(v));
	return 0;
}

int json_io_parse_livekit_event(const char *body, size_t len, struct livekit_event *out, const char **why)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	memset(out, 0, sizeof(*out));
	int rc = -1;
	json_t *room = root ? json_object_get(root, "room") : NULL;
	json_t *participant = root ? json_object_get(root, "participant") : NULL;
	if (!root || !json_is_object(root)) {
		*why = "not a JSON object";
	} else if (string_member(root, "event", &out->event) != 0 || !out->event) {
		*why = "event missing or not a string";
	} else if (string_member(root, "id", &out->id) != 0 ||
		   (out->id && strlen(out->id) > LIVEKIT_EVENT_ID_MAX)) {
		*why = "id not a string or too long";
	} else if ((room && !json_is_object(room)) || (participant && !json_is_object(participant)) ||
		   string_member(room, "name", &out->room) != 0 ||
		   string_member(participant, "identity", &out->identity) != 0) {
		*why = "room.name or participant.identity not a string";
	} else {
		rc = 0;
	}
	if (rc != 0)
		json_io_livekit_event_release(out);
	json_decref(root);
	return rc;
}

void json_io_livekit_event_release(struct livekit_event *e)
{
	free(e->event);
	free(e->id);
	free(e->room);
	free(e->identity);
	memset(e, 0, sizeof(*e));
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

/* ,"name":{"userId":...,"deviceId"?:...} when a has a user. */
static void add_actor(struct sbuf *sb, const char *name, const struct actor *a)
{
	if (!a->user_id)
		return;
	sbuf_addf(sb, ",\"%s\":{\"userId\":", name);
	json_io_add_string(sb, a->user_id);
	if (a->device_id) {
		sbuf_adds(sb, ",\"deviceId\":");
		json_io_add_string(sb, a->device_id);
	}
	sbuf_addc(sb, '}');
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
	sbuf_addf(sb, ",\"revision\":%lld", (long long)call->revision);
	if (call->end_reason != END_NONE)
		sbuf_addf(sb, ",\"endReason\":\"%s\"", end_reason_name(call->end_reason));
	add_actor(sb, "answeredBy", &call->answered_by);
	add_actor(sb, "endedBy", &call->ended_by);
	if (call->media_joined_at[PARTY_CALLER] || call->media_joined_at[PARTY_RECEIVER]) {
		static const char *const side[2] = { "caller", "receiver" };
		sbuf_adds(sb, ",\"mediaJoinedAt\":{");
		for (int p = 0, first = 1; p < 2; p++) {
			if (!call->media_joined_at[p])
				continue;
			char when[ISO_TIME_LEN];
			iso_time_format(call->media_joined_at[p], when);
			sbuf_addf(sb, "%s\"%s\":\"%s\"", first ? "" : ",", side[p], when);
			first = 0;
		}
		sbuf_addc(sb, '}');
	}
	sbuf_addc(sb, '}');
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

char *json_io_health(int broker_up, int ready, size_t users, size_t calls, size_t live_calls, size_t outbox,
		     size_t *len)
{
	struct sbuf sb;
	sbuf_init(&sb, 160);
	sbuf_addf(&sb,
		  "{\"status\":\"%s\",\"broker\":\"%s\",\"ready\":%s,\"users\":%zu,\"calls\":%zu,"
		  "\"liveCalls\":%zu,\"outbox\":%zu}",
		  !broker_up ? "degraded"
		  : ready    ? "ok"
			     : "restoring",
		  broker_up ? "connected" : "disconnected", ready ? "true" : "false", users, calls,
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
