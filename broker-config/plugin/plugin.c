/*
 * plugin.c - Mosquitto plugin "callsignal_auth": authentication and access
 * control for jwt mode (AUTH_MODE=jwt).
 *
 * Loaded by broker-config/mosquitto-jwt.conf (and the TLS variant). It owns
 * the broker side of "nobody rings, listens or joins as someone else":
 *   - CONNECT: username = user id, password = the user's token, checked by
 *     token_check.c at connect time only (a connected client stays until it
 *     disconnects; docs/security.md says how to kick one). The service logs in
 *     with its own username and password, compared in constant time.
 *   - every SUBSCRIBE, delivered message (READ) and PUBLISH/Will (WRITE) is
 *     decided by auth_rules.c.
 * This file is the only one that includes the broker's headers; it parses
 * the plugin_opt_* options (listed in docs/security.md) and maps events.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "auth_rules.h"
#include "token_check.h"

#define PLUGIN_NAME "callsignal_auth"
#define OPTION_FILE_MAX (64 * 1024)
#define SECRET_MIN_LEN 32

struct plugin_state {
	mosquitto_plugin_id_t *id;
	struct token_verifier verifier;
	char *service_username;
	char *service_password;
};

/* The broker loads one instance; kept for cleanup, which gets only userdata. */
static struct plugin_state plugin_state;

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	for (int i = 0; i < supported_version_count; i++) {
		if (supported_versions[i] == 5)
			return 5;
	}
	return -1;
}

/* Returns the value of option name, or NULL. Borrowed from the broker's option list. */
static const char *option_get(struct mosquitto_opt *options, int option_count, const char *name)
{
	for (int i = 0; i < option_count; i++) {
		if (options[i].key != NULL && strcmp(options[i].key, name) == 0)
			return options[i].value;
	}
	return NULL;
}

/*
 * Reads a whole file (at most OPTION_FILE_MAX bytes) into a new NUL-terminated
 * buffer the caller frees; *len gets its length. With trim, trailing CR/LF
 * are dropped (secret files usually end with a newline). NULL on failure,
 * after logging why.
 */
static char *file_read(const char *option, const char *path, bool trim, size_t *len)
{
	char *buf;
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot open %s \"%s\": %s", option,
				     path, strerror(errno));
		return NULL;
	}
	buf = malloc(OPTION_FILE_MAX + 1);
	if (buf == NULL)
		abort();
	n = fread(buf, 1, OPTION_FILE_MAX + 1, f);
	if (ferror(f) || n > OPTION_FILE_MAX) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot read %s \"%s\": %s", option,
				     path, ferror(f) ? "read error" : "file too large");
		fclose(f);
		free(buf);
		return NULL;
	}
	fclose(f);
	while (trim && n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	*len = n;
	return buf;
}

/*
 * Gets a secret given either inline (option name) or in a file (name_file).
 * Returns a new string (caller frees), NULL when neither is set (*failed
 * stays false) or on error (*failed set, reason logged).
 */
static char *secret_option(struct mosquitto_opt *options, int option_count, const char *name,
			   bool *failed)
{
	char file_name[64];
	const char *inline_value = option_get(options, option_count, name);
	const char *path;
	char *value;
	size_t len;

	snprintf(file_name, sizeof(file_name), "%s_file", name);
	path = option_get(options, option_count, file_name);
	if (inline_value != NULL && path != NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": set plugin_opt_%s or plugin_opt_%s, not both",
				     name, file_name);
		*failed = true;
		return NULL;
	}
	if (path != NULL) {
		value = file_read(file_name, path, true, &len);
		if (value == NULL) {
			*failed = true;
			return NULL;
		}
	} else if (inline_value != NULL) {
		value = strdup(inline_value);
		if (value == NULL)
			abort();
		len = strlen(value);
	} else {
		return NULL;
	}
	if (len == 0 || strlen(value) != len) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": plugin_opt_%s is empty or holds a NUL byte", name);
		free(value);
		*failed = true;
		return NULL;
	}
	return value;
}

static void secret_free(char *s)
{
	if (s == NULL)
		return;
	for (volatile char *p = s; *p != '\0'; p++)
		*p = '\0';
	free(s);
}

/* Adds an HS256 secret to the verifier; warns about short ones. Steals secret. */
static void verifier_add_secret(struct token_verifier *v, char *secret, const char *name)
{
	size_t len = strlen(secret);

	if (len < SECRET_MIN_LEN)
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				     PLUGIN_NAME ": plugin_opt_%s is shorter than %d bytes; use a long random secret",
				     name, SECRET_MIN_LEN);
	token_verifier_add_key(v, (const unsigned char *)secret, len);
	secret_free(secret);
}

/* Adds the RS256 public key in the PEM file at path. Returns 0 or -1 (logged). */
static int verifier_add_pem(struct token_verifier *v, const char *option, const char *path)
{
	size_t len;
	char *pem = file_read(option, path, false, &len);

	if (pem == NULL)
		return -1;
	if (len == 0 || strstr(pem, "-----BEGIN PUBLIC KEY-----") == NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     PLUGIN_NAME ": plugin_opt_%s \"%s\" is not a PEM public key (BEGIN PUBLIC KEY)",
				     option, path);
		free(pem);
		return -1;
	}
	token_verifier_add_key(v, (const unsigned char *)pem, len);
	free(pem);
	return 0;
}

/* Fills st->verifier from the jwt_* options. Returns 0 or -1 (logged). */
static int keys_configure(struct plugin_state *st, struct mosquitto_opt *options, int option_count)
{
	bool failed = false;
	char *secret = secret_option(options, option_count, "jwt_secret", &failed);
	char *previous = secret_option(options, option_count, "jwt_secret_previous", &failed);
	const char *pem_path = option_get(options, option_count, "jwt_public_key_file");
	const char *pem_previous = option_get(options, option_count, "jwt_public_key_previous_file");

	if (failed)
		goto fail;
	if ((secret != NULL) == (pem_path != NULL)) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": set exactly one of plugin_opt_jwt_secret, "
				     "plugin_opt_jwt_secret_file (HS256) and plugin_opt_jwt_public_key_file (RS256)");
		goto fail;
	}
	if (secret != NULL) {
		if (pem_previous != NULL) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": plugin_opt_jwt_public_key_previous_file "
					     "needs plugin_opt_jwt_public_key_file (RS256)");
			goto fail;
		}
		st->verifier.alg = TOKEN_ALG_HS256;
		verifier_add_secret(&st->verifier, secret, "jwt_secret");
		secret = NULL;
		if (previous != NULL) {
			verifier_add_secret(&st->verifier, previous, "jwt_secret_previous");
			previous = NULL;
		}
		return 0;
	}
	if (previous != NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": plugin_opt_jwt_secret_previous needs "
				     "plugin_opt_jwt_secret (HS256)");
		goto fail;
	}
	st->verifier.alg = TOKEN_ALG_RS256;
	if (verifier_add_pem(&st->verifier, "jwt_public_key_file", pem_path) != 0)
		goto fail;
	if (pem_previous != NULL &&
	    verifier_add_pem(&st->verifier, "jwt_public_key_previous_file", pem_previous) != 0)
		goto fail;
	return 0;
fail:
	secret_free(secret);
	secret_free(previous);
	token_verifier_release(&st->verifier);
	return -1;
}

/* Fills the service's credential. Returns 0 or -1 (logged). */
static int service_configure(struct plugin_state *st, struct mosquitto_opt *options, int option_count)
{
	bool failed = false;
	const char *username = option_get(options, option_count, "service_username");

	if (username == NULL || username[0] == '\0') {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": plugin_opt_service_username is required");
		return -1;
	}
	st->service_password = secret_option(options, option_count, "service_password", &failed);
	if (st->service_password == NULL) {
		if (!failed)
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": plugin_opt_service_password "
					     "(or plugin_opt_service_password_file) is required");
		return -1;
	}
	st->service_username = strdup(username);
	if (st->service_username == NULL)
		abort();
	return 0;
}

/*
 * Compares a presented password with the expected one in time that depends
 * only on their lengths, so the expected one cannot be guessed byte by byte.
 */
static bool secret_equals(const char *given, const char *expected)
{
	size_t given_len = strlen(given);
	size_t expected_len = strlen(expected);
	volatile unsigned char diff = given_len != expected_len;

	for (size_t i = 0; i < expected_len; i++) {
		unsigned char g = i < given_len ? (unsigned char)given[i] : 0;

		diff |= g ^ (unsigned char)expected[i];
	}
	return diff == 0;
}

/* A string safe to put in a log line: s itself when it is a valid id. */
static const char *loggable(const char *s)
{
	if (s == NULL)
		return "(none)";
	return auth_id_is_valid(s) ? s : "(not a valid id)";
}

/* A topic safe to put in a log line: topic itself when short and free of control bytes. */
static const char *loggable_topic(const char *topic)
{
	size_t len = 0;

	if (topic == NULL)
		return "(none)";
	for (const unsigned char *p = (const unsigned char *)topic; *p != '\0'; p++, len++) {
		if (*p < 0x20 || *p == 0x7f || len >= 256)
			return "(unprintable or long topic)";
	}
	return topic;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	struct plugin_state *st = userdata;
	const char *client_id = mosquitto_client_id(ed->client);
	enum token_result result;

	(void)event;
	if (ed->username == NULL || ed->password == NULL) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": refused client \"%s\": no username or password",
				     loggable(client_id));
		return MOSQ_ERR_AUTH;
	}
	if (strcmp(ed->username, st->service_username) == 0) {
		if (secret_equals(ed->password, st->service_password))
			return MOSQ_ERR_SUCCESS;
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": refused client \"%s\": wrong service password",
				     loggable(client_id));
		return MOSQ_ERR_AUTH;
	}
	result = token_verify(&st->verifier, ed->password, ed->username, time(NULL));
	if (result == TOKEN_OK)
		return MOSQ_ERR_SUCCESS;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": refused user \"%s\" (client \"%s\"): %s",
			     loggable(ed->username), loggable(client_id), token_result_describe(result));
	return MOSQ_ERR_AUTH;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	struct plugin_state *st = userdata;
	const char *username = mosquitto_client_username(ed->client);
	const char *client_id = mosquitto_client_id(ed->client);
	enum auth_role role;
	enum auth_access access;

	(void)event;
	if (username == NULL)
		return MOSQ_ERR_ACL_DENIED;
	role = strcmp(username, st->service_username) == 0 ? AUTH_ROLE_SERVICE : AUTH_ROLE_USER;
	switch (ed->access) {
	case MOSQ_ACL_SUBSCRIBE:
		access = AUTH_ACCESS_SUBSCRIBE;
		break;
	case MOSQ_ACL_UNSUBSCRIBE:
		access = AUTH_ACCESS_UNSUBSCRIBE;
		break;
	case MOSQ_ACL_READ:
		access = AUTH_ACCESS_READ;
		break;
	case MOSQ_ACL_WRITE:
		access = AUTH_ACCESS_WRITE;
		break;
	default:
		return MOSQ_ERR_ACL_DENIED;
	}
	if (auth_allows(role, username, client_id, access, ed->topic))
		return MOSQ_ERR_SUCCESS;
	/* Denied reads are not logged: one '#' subscriber would flood the log. */
	if (access != AUTH_ACCESS_READ)
		mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": denied %s to \"%s\" by \"%s\" (client \"%s\")",
				     access == AUTH_ACCESS_WRITE ? "publish" : "subscribe", loggable_topic(ed->topic),
				     loggable(username), loggable(client_id));
	return MOSQ_ERR_ACL_DENIED;
}

static void state_release(struct plugin_state *st)
{
	token_verifier_release(&st->verifier);
	secret_free(st->service_password);
	free(st->service_username);
	st->service_password = NULL;
	st->service_username = NULL;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata,
			  struct mosquitto_opt *options, int option_count)
{
	struct plugin_state *st = &plugin_state;

	memset(st, 0, sizeof(*st));
	st->id = identifier;
	if (keys_configure(st, options, option_count) != 0 ||
	    service_configure(st, options, option_count) != 0) {
		state_release(st);
		return MOSQ_ERR_INVAL;
	}
	if (mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, st) != MOSQ_ERR_SUCCESS ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, st) != MOSQ_ERR_SUCCESS) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot register callbacks");
		state_release(st);
		return MOSQ_ERR_UNKNOWN;
	}
	*userdata = st;
	mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_NAME ": %s user tokens, %d key(s), service user \"%s\"",
			     st->verifier.alg == TOKEN_ALG_RS256 ? "RS256" : "HS256", st->verifier.key_count,
			     loggable(st->service_username));
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_cleanup(void *userdata, struct mosquitto_opt *options, int option_count)
{
	struct plugin_state *st = userdata;

	(void)options;
	(void)option_count;
	if (st == NULL)
		return MOSQ_ERR_SUCCESS;
	mosquitto_callback_unregister(st->id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(st->id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
	state_release(st);
	return MOSQ_ERR_SUCCESS;
}
