/*
 * config.h - the service's settings, from the environment and argv.
 *
 * Every setting is an environment variable and a flag of the same name
 * (PORT and --port); flags win. config_load fills one struct that the rest
 * of the program treats as read-only.
 */
#ifndef CALLSIGNAL_CONFIG_H
#define CALLSIGNAL_CONFIG_H

enum auth_mode { AUTH_OPEN, AUTH_JWT };

struct config {
	int port;
	char *http_host;
	char *mqtt_url;
	char *mqtt_username;
	char *mqtt_password;
	char *mqtt_ca_file;
	char *mqtt_ws_url;
	char *livekit_api_key;
	char *livekit_api_secret;
	char *livekit_url;
	double token_ttl_s;
	double ring_timeout_s;
	double offline_grace_s;
	double call_retention_s;
	int call_retention_max;
	char *web_root;
	char *cors_origin;
	char *log_level;
	enum auth_mode auth_mode;
	char *auth_jwt_secret;
	char *auth_jwt_public_key_file;
	char *auth_jwt_secret_previous;
	char *auth_jwt_public_key_previous_file;
	int start_rate_per_min;
	int insecure_public;
	char *state_engine; /* "memory" or "redis" */
	char *redis_url;
	double presence_refresh_s; /* 0: no presence lease */
	char *log_format;          /* "text" or "json" */
	char *metrics_token;       /* GET /metrics requires it as a bearer token; NULL: open */
	char *webhook_urls;
	char *webhook_secret;
	double webhook_timeout_s;
	double webhook_retry_s;
	int webhook_queue_max;
	double ring_offline_s;
	int call_history_max;
	int webhook_concurrency;
};

/*
 * Loads defaults, then the environment, then argv. Returns 0 when the
 * service should run, -1 after --help or --version (exit 0), or 2 after a
 * bad setting (explained on stderr; exit 2).
 */
int config_load(struct config *cfg, int argc, char **argv);
void config_release(struct config *cfg);

/* 1 when host names a loopback address (127.0.0.0/8, ::1, localhost). */
int config_host_is_loopback(const char *host);

#endif
