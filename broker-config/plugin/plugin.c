/*
 * plugin.c - Mosquitto plugin "callsignal_auth": authentication and access
 * control for jwt mode (AUTH_MODE=jwt).
 *
 * Loaded by broker-config/mosquitto-jwt.conf (and the TLS variant). It owns
 * the broker side of "nobody rings, listens or joins as someone else":
 *   - CONNECT: username = user id, password = the user's token, checked by
 *     common/user_token.c (the service's own checks) when the client
 *     connects (and again on reload, below; otherwise a connected client
 *     stays until it disconnects). The service logs in with its own username
 *     and password, compared in constant time. The client id must name the
 *     user ("{userId}.{device}"), and the service's must name no user
 *     (auth_rules.c): Mosquitto asks the plugin before it looks for a session
 *     of that client id, so a refused CONNECT takes over nobody's session.
 *   - every SUBSCRIBE, delivered message (READ) and PUBLISH/Will (WRITE) is
 *     decided by auth_rules.c.
 *   - on SIGHUP (MOSQ_EVT_RELOAD) the files named by the options are read
 *     again: keys and the service password can be rotated without a restart,
 *     and users listed in the revoked-users file are refused from then on.
 *     Every connected user client whose token no longer passes (expired, key
 *     retired, user revoked) is disconnected with its Last Will (sessions.h).
 *     Mosquitto does not re-read plugin_opt_* lines on SIGHUP, so the option
 *     values of the start are kept here.
 * This file is the only one that includes the broker's headers; it parses
 * the plugin_opt_* options (listed in docs/security.md) and maps events.
 * Running out of memory refuses the one client, or fails the start or the
 * reload (which then keeps the running configuration): the plugin never
 * aborts the broker that everyone else is connected to.
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
#include "sessions.h"
#include "user_token.h"

#define PLUGIN_NAME     "callsignal_auth"
#define OPTION_FILE_MAX (64 * 1024)
#define SECRET_MIN_LEN  32

/* What the options and the files they name say; replaced whole on reload. */
struct plugin_config {
	struct user_token_verifier verifier;
	char *service_username;
	char *service_password;
	char **revoked; /* user ids refused at CONNECT and kicked on reload */
	size_t revoked_count;
};

struct plugin_state {
	mosquitto_plugin_id_t *id;
	struct mosquitto_opt *options; /* own copy of the start-up options */
	int option_count;
	struct plugin_config config;
	struct session_table sessions; /* connected user clients, for reloads */
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

/* Wipes and frees a secret string (NULL is fine). */
static void secret_free(char *s)
{
	if (s == NULL)
		return;
	for (volatile char *p = s; *p != '\0'; p++)
		*p = '\0';
	free(s);
}

/*
 * Reads a whole file (at most OPTION_FILE_MAX bytes) into a new NUL-terminated
 * buffer the caller frees; *len gets its length. With trim, trailing CR/LF
 * are dropped (secret files usually end with a newline). NULL on failure,
 * after logging why, with errno ENOENT when the file does not exist (not
 * logged with missing_ok).
 */
static char *file_read(const char *option, const char *path, bool trim, bool missing_ok, size_t *len)
{
	char *buf;
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL) {
		int saved = errno;

		if (saved != ENOENT || !missing_ok)
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot open %s \"%s\": %s", option,
					     path, strerror(saved));
		errno = saved;
		return NULL;
	}
	buf = malloc(OPTION_FILE_MAX + 1);
	if (buf == NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot read %s \"%s\": out of memory",
				     option, path);
		fclose(f);
		errno = ENOMEM;
		return NULL;
	}
	n = fread(buf, 1, OPTION_FILE_MAX + 1, f);
	if (ferror(f) || n > OPTION_FILE_MAX) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot read %s \"%s\": %s", option, path,
				     ferror(f) ? "read error" : "file too large");
		fclose(f);
		free(buf);
		errno = EIO;
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
 * stays false) or on error (*failed set, reason logged). With optional, a
 * missing or empty file counts as not set (a previous key that is not there).
 */
static char *secret_option(struct mosquitto_opt *options, int option_count, const char *name, bool optional,
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
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     PLUGIN_NAME ": set plugin_opt_%s or plugin_opt_%s, not both", name,
				     file_name);
		*failed = true;
		return NULL;
	}
	if (path != NULL) {
		value = file_read(file_name, path, true, optional, &len);
		if (value == NULL) {
			if (!(optional && errno == ENOENT))
				*failed = true;
			return NULL;
		}
		if (optional && len == 0) {
			secret_free(value);
			return NULL;
		}
	} else if (inline_value != NULL) {
		value = strdup(inline_value);
		if (value == NULL) {
			mosquitto_log_printf(MOSQ_LOG_ERR,
					     PLUGIN_NAME ": cannot keep plugin_opt_%s: out of memory", name);
			*failed = true;
			return NULL;
		}
		len = strlen(value);
	} else {
		return NULL;
	}
	if (len == 0 || strlen(value) != len) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": plugin_opt_%s is empty or holds a NUL byte",
				     name);
		secret_free(value);
		*failed = true;
		return NULL;
	}
	return value;
}

/* Adds an HS256 secret to the verifier; warns about short ones. Steals secret. Returns 0 or -1 (logged). */
static int verifier_add_secret(struct user_token_verifier *v, char *secret, const char *name)
{
	size_t len = strlen(secret);
	int rc;

	if (len < SECRET_MIN_LEN)
		mosquitto_log_printf(MOSQ_LOG_WARNING,
				     PLUGIN_NAME
				     ": plugin_opt_%s is shorter than %d bytes; use a long random secret",
				     name, SECRET_MIN_LEN);
	rc = user_token_verifier_add_key(v, (const unsigned char *)secret, len);
	if (rc != 0)
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot keep plugin_opt_%s (out of memory)",
				     name);
	secret_free(secret);
	return rc;
}

/*
 * Adds the RS256 public key in the PEM file at path. Returns 1 when added,
 * 0 when optional and the file does not exist, -1 on error (logged).
 */
static int verifier_add_pem(struct user_token_verifier *v, const char *option, const char *path,
			    bool optional)
{
	size_t len;
	char *pem = file_read(option, path, false, optional, &len);

	if (pem == NULL)
		return optional && errno == ENOENT ? 0 : -1;
	if (len == 0 || strstr(pem, "-----BEGIN PUBLIC KEY-----") == NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     PLUGIN_NAME
				     ": plugin_opt_%s \"%s\" is not a PEM public key (BEGIN PUBLIC KEY)",
				     option, path);
		free(pem);
		return -1;
	}
	if (user_token_verifier_add_key(v, (const unsigned char *)pem, len) != 0) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot keep plugin_opt_%s (out of memory)",
				     option);
		free(pem);
		return -1;
	}
	free(pem);
	return 1;
}

/*
 * Fills cfg->verifier from the jwt_* options: HS256 with jwt_secret[_file]
 * (plus an optional jwt_secret_previous[_file]) or RS256 with
 * jwt_public_key_file (plus an optional jwt_public_key_previous_file). A
 * previous-key file that is missing or empty means "no previous key", so the
 * option can stay in the configuration between rotations.
 * Returns 0 or -1 (logged).
 */
static int keys_configure(struct plugin_config *cfg, struct mosquitto_opt *options, int option_count)
{
	bool failed = false;
	char *secret = secret_option(options, option_count, "jwt_secret", false, &failed);
	char *previous = secret_option(options, option_count, "jwt_secret_previous", true, &failed);
	const char *pem_path = option_get(options, option_count, "jwt_public_key_file");
	const char *pem_previous = option_get(options, option_count, "jwt_public_key_previous_file");

	if (failed)
		goto fail;
	if ((secret != NULL) == (pem_path != NULL)) {
		mosquitto_log_printf(
		    MOSQ_LOG_ERR, PLUGIN_NAME
		    ": set exactly one of plugin_opt_jwt_secret, "
		    "plugin_opt_jwt_secret_file (HS256) and plugin_opt_jwt_public_key_file (RS256)");
		goto fail;
	}
	if (secret != NULL) {
		int rc;

		cfg->verifier.alg = USER_TOKEN_HS256;
		rc = verifier_add_secret(&cfg->verifier, secret, "jwt_secret");
		secret = NULL;
		if (previous != NULL) {
			rc |= verifier_add_secret(&cfg->verifier, previous, "jwt_secret_previous");
			previous = NULL;
		}
		if (rc != 0)
			goto fail;
		return 0;
	}
	if (previous != NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     PLUGIN_NAME ": a previous HS256 secret is set in RS256 mode "
						 "(plugin_opt_jwt_public_key_file)");
		goto fail;
	}
	cfg->verifier.alg = USER_TOKEN_RS256;
	if (verifier_add_pem(&cfg->verifier, "jwt_public_key_file", pem_path, false) < 0)
		goto fail;
	if (pem_previous != NULL &&
	    verifier_add_pem(&cfg->verifier, "jwt_public_key_previous_file", pem_previous, true) < 0)
		goto fail;
	return 0;
fail:
	secret_free(secret);
	secret_free(previous);
	user_token_verifier_release(&cfg->verifier);
	return -1;
}

/* Fills the service's credential. Returns 0 or -1 (logged). */
static int service_configure(struct plugin_config *cfg, struct mosquitto_opt *options, int option_count)
{
	bool failed = false;
	const char *username = option_get(options, option_count, "service_username");

	if (username == NULL || username[0] == '\0') {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": plugin_opt_service_username is required");
		return -1;
	}
	cfg->service_password = secret_option(options, option_count, "service_password", false, &failed);
	if (cfg->service_password == NULL) {
		if (!failed)
			mosquitto_log_printf(MOSQ_LOG_ERR,
					     PLUGIN_NAME ": plugin_opt_service_password "
							 "(or plugin_opt_service_password_file) is required");
		return -1;
	}
	cfg->service_username = strdup(username);
	if (cfg->service_username == NULL) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot keep plugin_opt_service_username: "
							       "out of memory");
		return -1;
	}
	return 0;
}

/* Frees everything cfg holds and empties it. */
static void config_release(struct plugin_config *cfg)
{
	user_token_verifier_release(&cfg->verifier);
	secret_free(cfg->service_password);
	free(cfg->service_username);
	for (size_t i = 0; i < cfg->revoked_count; i++)
		free(cfg->revoked[i]);
	free(cfg->revoked);
	memset(cfg, 0, sizeof(*cfg));
}

/*
 * Reads the revoked-users file (plugin_opt_revoked_users_file): one user id
 * per line, blank lines and lines starting with '#' ignored. A missing file
 * means nobody is revoked. Returns 0 or -1 (logged) when it cannot be read or
 * holds a line that is not a valid id.
 */
static int revoked_configure(struct plugin_config *cfg, struct mosquitto_opt *options, int option_count)
{
	const char *path = option_get(options, option_count, "revoked_users_file");
	char **grown;
	char *copy;
	char *text;
	char *line;
	char *next;
	size_t len;
	int lineno = 0;

	if (path == NULL)
		return 0;
	text = file_read("revoked_users_file", path, false, true, &len);
	if (text == NULL)
		return errno == ENOENT ? 0 : -1;
	for (line = text; line != NULL && *line != '\0'; line = next) {
		size_t n;

		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		n = strlen(line);
		while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t'))
			line[--n] = '\0';
		if (n == 0 || line[0] == '#')
			continue;
		if (!id_str_is_valid(line)) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": %s:%d is not a valid user id", path,
					     lineno);
			free(text);
			return -1;
		}
		grown = realloc(cfg->revoked, (cfg->revoked_count + 1) * sizeof(*cfg->revoked));
		if (grown != NULL)
			cfg->revoked = grown;
		copy = grown != NULL ? strdup(line) : NULL;
		if (copy == NULL) {
			mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot read %s: out of memory",
					     path);
			free(text);
			return -1;
		}
		cfg->revoked[cfg->revoked_count++] = copy;
	}
	free(text);
	return 0;
}

static bool config_is_revoked(const struct plugin_config *cfg, const char *user_id)
{
	for (size_t i = 0; i < cfg->revoked_count; i++) {
		if (strcmp(cfg->revoked[i], user_id) == 0)
			return true;
	}
	return false;
}

/* Loads a whole configuration into cfg (empty on entry). Returns 0, or -1 (logged) with cfg empty. */
static int config_load(struct plugin_config *cfg, struct mosquitto_opt *options, int option_count)
{
	if (keys_configure(cfg, options, option_count) != 0 ||
	    service_configure(cfg, options, option_count) != 0 ||
	    revoked_configure(cfg, options, option_count) != 0) {
		config_release(cfg);
		return -1;
	}
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
	return id_str_is_valid(s) ? s : "(not a valid id)";
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
	const struct plugin_config *cfg = &st->config;
	const char *client_id = mosquitto_client_id(ed->client);
	enum user_token_result result;

	(void)event;
	if (ed->username == NULL || ed->password == NULL) {
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     PLUGIN_NAME ": refused client \"%s\": no username or password",
				     loggable(client_id));
		return MOSQ_ERR_AUTH;
	}
	if (strcmp(ed->username, cfg->service_username) == 0) {
		if (!secret_equals(ed->password, cfg->service_password)) {
			mosquitto_log_printf(MOSQ_LOG_NOTICE,
					     PLUGIN_NAME ": refused client \"%s\": wrong service password",
					     loggable(client_id));
			return MOSQ_ERR_AUTH;
		}
		if (auth_client_id_allowed(AUTH_ROLE_SERVICE, NULL, client_id))
			return MOSQ_ERR_SUCCESS;
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     PLUGIN_NAME ": refused the service on client \"%s\": its client ids "
						 "must name no user (no '.')",
				     loggable(client_id));
		return MOSQ_ERR_AUTH;
	}
	result = user_token_verify(&cfg->verifier, ed->password, ed->username, time(NULL), NULL);
	if (result == USER_TOKEN_OK && !auth_client_id_allowed(AUTH_ROLE_USER, ed->username, client_id)) {
		/* Refused before Mosquitto looks for a session of that id: no takeover. */
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     PLUGIN_NAME ": refused user \"%s\" on client \"%s\": a user's client id "
						 "must be \"{userId}.{device}\"",
				     loggable(ed->username), loggable(client_id));
		return MOSQ_ERR_AUTH;
	}
	if (result == USER_TOKEN_OK && !config_is_revoked(cfg, ed->username)) {
		/* Untracked, a client would outlive its token's expiry or revocation: refuse it. */
		if (sessions_put(&st->sessions, ed->client, client_id ? client_id : "", ed->username,
				 ed->password) == 0)
			return MOSQ_ERR_SUCCESS;
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     PLUGIN_NAME ": refused user \"%s\" (client \"%s\"): out of memory",
				     loggable(ed->username), loggable(client_id));
		return MOSQ_ERR_AUTH;
	}
	mosquitto_log_printf(MOSQ_LOG_NOTICE, PLUGIN_NAME ": refused user \"%s\" (client \"%s\"): %s",
			     loggable(ed->username), loggable(client_id),
			     result == USER_TOKEN_OK ? "user is revoked"
						     : user_token_result_describe(result));
	return MOSQ_ERR_AUTH;
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	const struct plugin_config *cfg = &((struct plugin_state *)userdata)->config;
	const char *username = mosquitto_client_username(ed->client);
	const char *client_id = mosquitto_client_id(ed->client);
	enum auth_role role;
	enum auth_access access;

	(void)event;
	if (username == NULL)
		return MOSQ_ERR_ACL_DENIED;
	role = strcmp(username, cfg->service_username) == 0 ? AUTH_ROLE_SERVICE : AUTH_ROLE_USER;
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
		access = ed->payloadlen == 0 && ed->retain ? AUTH_ACCESS_CLEAR : AUTH_ACCESS_WRITE;
		break;
	default:
		return MOSQ_ERR_ACL_DENIED;
	}
	if (auth_allows(role, username, client_id, access, ed->topic))
		return MOSQ_ERR_SUCCESS;
	/* Denied reads are not logged: one '#' subscriber would flood the log. */
	if (access != AUTH_ACCESS_READ)
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     PLUGIN_NAME ": denied %s to \"%s\" by \"%s\" (client \"%s\")",
				     access == AUTH_ACCESS_WRITE   ? "publish"
				     : access == AUTH_ACCESS_CLEAR ? "an empty retained publish"
								   : "subscribe",
				     loggable_topic(ed->topic), loggable(username), loggable(client_id));
	return MOSQ_ERR_ACL_DENIED;
}

static void config_log_summary(const struct plugin_config *cfg, const char *when)
{
	mosquitto_log_printf(MOSQ_LOG_INFO,
			     PLUGIN_NAME ": %s: %s user tokens, %d key(s), service user \"%s\", "
					 "%zu revoked user(s)",
			     when, cfg->verifier.alg == USER_TOKEN_RS256 ? "RS256" : "HS256",
			     cfg->verifier.key_count, loggable(cfg->service_username), cfg->revoked_count);
}

/*
 * Disconnects, with their Last Will, the connected user clients whose token
 * does not pass the current configuration any more.
 */
static void sessions_check(struct plugin_state *st)
{
	time_t now = time(NULL);
	size_t i = 0;

	while (i < st->sessions.count) {
		const struct session *s = &st->sessions.items[i];
		enum user_token_result r =
		    user_token_verify(&st->config.verifier, s->token, s->username, now, NULL);
		bool revoked = config_is_revoked(&st->config, s->username);
		char *client_id;

		if (r == USER_TOKEN_OK && !revoked) {
			i++;
			continue;
		}
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				     PLUGIN_NAME ": disconnecting user \"%s\" (client \"%s\"): %s",
				     loggable(s->username), loggable(s->client_id),
				     revoked ? "user is revoked" : user_token_result_describe(r));
		/* Out of the table first: the kick may call on_disconnect() right away. */
		client_id = st->sessions.items[i].client_id;
		st->sessions.items[i].client_id = NULL;
		sessions_remove_at(&st->sessions, i);
		mosquitto_kick_client_by_clientid(client_id, true);
		free(client_id);
	}
}

/*
 * SIGHUP: loads the configuration again from the start-up options (the files
 * they name may have changed). On any error the running configuration stays.
 * Then checks the connected clients against it.
 */
static int on_reload(int event, void *event_data, void *userdata)
{
	struct plugin_state *st = userdata;
	struct plugin_config fresh;

	(void)event;
	(void)event_data;
	memset(&fresh, 0, sizeof(fresh));
	if (config_load(&fresh, st->options, st->option_count) != 0) {
		mosquitto_log_printf(MOSQ_LOG_ERR,
				     PLUGIN_NAME ": reload failed, keeping the previous configuration");
		return MOSQ_ERR_SUCCESS;
	}
	config_release(&st->config);
	st->config = fresh;
	config_log_summary(&st->config, "reloaded");
	sessions_check(st);
	mosquitto_log_printf(MOSQ_LOG_INFO, PLUGIN_NAME ": %zu user client(s) connected after the reload",
			     st->sessions.count);
	return MOSQ_ERR_SUCCESS;
}

static int on_disconnect(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_disconnect *ed = event_data;
	struct plugin_state *st = userdata;

	(void)event;
	sessions_remove(&st->sessions, ed->client);
	return MOSQ_ERR_SUCCESS;
}

static void options_free(struct plugin_state *st)
{
	for (int i = 0; i < st->option_count; i++) {
		free(st->options[i].key);
		secret_free(st->options[i].value);
	}
	free(st->options);
	st->options = NULL;
	st->option_count = 0;
}

/* Keeps a copy of the start-up options for reloads. Returns 0, or -1 (logged) when memory ran out. */
static int options_copy(struct plugin_state *st, struct mosquitto_opt *options, int option_count)
{
	st->options = calloc(option_count > 0 ? (size_t)option_count : 1, sizeof(*st->options));
	if (st->options == NULL)
		goto fail;
	st->option_count = option_count;
	for (int i = 0; i < option_count; i++) {
		st->options[i].key = strdup(options[i].key ? options[i].key : "");
		st->options[i].value = strdup(options[i].value ? options[i].value : "");
		if (st->options[i].key == NULL || st->options[i].value == NULL)
			goto fail;
	}
	return 0;
fail:
	mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot keep the options: out of memory");
	options_free(st);
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **userdata, struct mosquitto_opt *options,
			  int option_count)
{
	struct plugin_state *st = &plugin_state;

	if (st->id != NULL) {
		/* e.g. per_listener_settings true with the plugin on several listeners */
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": loaded twice; load it once, with "
							       "per_listener_settings false");
		return MOSQ_ERR_INVAL;
	}
	memset(st, 0, sizeof(*st));
	st->id = identifier;
	if (config_load(&st->config, options, option_count) != 0) {
		st->id = NULL;
		return MOSQ_ERR_INVAL;
	}
	if (options_copy(st, options, option_count) != 0) {
		config_release(&st->config);
		st->id = NULL;
		return MOSQ_ERR_NOMEM;
	}
	if (mosquitto_callback_register(identifier, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, st) !=
		MOSQ_ERR_SUCCESS ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, st) !=
		MOSQ_ERR_SUCCESS ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_RELOAD, on_reload, NULL, st) !=
		MOSQ_ERR_SUCCESS ||
	    mosquitto_callback_register(identifier, MOSQ_EVT_DISCONNECT, on_disconnect, NULL, st) !=
		MOSQ_ERR_SUCCESS) {
		mosquitto_log_printf(MOSQ_LOG_ERR, PLUGIN_NAME ": cannot register callbacks");
		config_release(&st->config);
		options_free(st);
		st->id = NULL;
		return MOSQ_ERR_UNKNOWN;
	}
	*userdata = st;
	config_log_summary(&st->config, "loaded");
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
	mosquitto_callback_unregister(st->id, MOSQ_EVT_RELOAD, on_reload, NULL);
	mosquitto_callback_unregister(st->id, MOSQ_EVT_DISCONNECT, on_disconnect, NULL);
	sessions_release(&st->sessions);
	config_release(&st->config);
	options_free(st);
	st->id = NULL;
	return MOSQ_ERR_SUCCESS;
}
