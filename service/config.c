/*
 * config.c - see config.h. One table lists every setting: its environment
 * variable, its flag, its kind and its help line; --help prints the table.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "redis_url.h"
#include "util.h"

enum kind { K_STR, K_PORT, K_SECONDS, K_COUNT, K_AUTH, K_LEVEL, K_FLAG, K_LOG_FORMAT };

static const struct option {
	const char *env;
	const char *flag;
	enum kind kind;
	size_t offset;
	const char *def;
	const char *help;
} options[] = {
	{ "PORT", "--port", K_PORT, offsetof(struct config, port), "4002", "HTTP port" },
	{ "HTTP_HOST", "--http-host", K_STR, offsetof(struct config, http_host), "127.0.0.1",
	  "address the HTTP API binds to" },
	{ "MQTT_URL", "--mqtt-url", K_STR, offsetof(struct config, mqtt_url), "tcp://127.0.0.1:1883",
	  "broker URL: tcp:// or mqtt:// (TCP), ssl:// or mqtts:// (TLS), ws:// or wss:// (WebSocket); "
	  "several, comma-separated: tried in order, failover" },
	{ "MQTT_USERNAME", "--mqtt-username", K_STR, offsetof(struct config, mqtt_username), NULL,
	  "the service's broker login (jwt mode)" },
	{ "MQTT_PASSWORD", "--mqtt-password", K_STR, offsetof(struct config, mqtt_password), NULL,
	  "the service's broker password (jwt mode)" },
	{ "MQTT_CA_FILE", "--mqtt-ca-file", K_STR, offsetof(struct config, mqtt_ca_file), NULL,
	  "CA certificate for TLS broker URLs" },
	{ "MQTT_WS_URL", "--mqtt-ws-url", K_STR, offsetof(struct config, mqtt_ws_url), NULL,
	  "broker WebSocket URL told to browsers (default ws://<page host>:9001)" },
	{ "LIVEKIT_API_KEY", "--livekit-api-key", K_STR, offsetof(struct config, livekit_api_key), NULL,
	  "LiveKit API key (token issuer)" },
	{ "LIVEKIT_API_SECRET", "--livekit-api-secret", K_STR, offsetof(struct config, livekit_api_secret),
	  NULL, "LiveKit API secret (token signing key)" },
	{ "LIVEKIT_URL", "--livekit-url", K_STR, offsetof(struct config, livekit_url), NULL,
	  "LiveKit server URL told to clients" },
	{ "TOKEN_TTL_S", "--token-ttl-s", K_SECONDS, offsetof(struct config, token_ttl_s), "3600",
	  "LiveKit token lifetime, seconds" },
	{ "RING_TIMEOUT_S", "--ring-timeout-s", K_SECONDS, offsetof(struct config, ring_timeout_s), "30",
	  "seconds a call may ring before it is MISSED" },
	{ "OFFLINE_GRACE_S", "--offline-grace-s", K_SECONDS, offsetof(struct config, offline_grace_s), "15",
	  "seconds a party of a live call may be offline before it ends in ERROR" },
	{ "CALL_RETENTION_S", "--call-retention-s", K_SECONDS, offsetof(struct config, call_retention_s),
	  "600", "seconds a finished call is remembered" },
	{ "CALL_RETENTION_MAX", "--call-retention-max", K_COUNT, offsetof(struct config, call_retention_max),
	  "100000", "finished calls remembered at most, oldest forgotten first (0: no cap)" },
	{ "WEB_ROOT", "--web-root", K_STR, offsetof(struct config, web_root), NULL,
	  "directory of the web client served at / (unset: none)" },
	{ "CORS_ORIGIN", "--cors-origin", K_STR, offsetof(struct config, cors_origin), "*",
	  "Access-Control-Allow-Origin value" },
	{ "LOG_LEVEL", "--log-level", K_LEVEL, offsetof(struct config, log_level), "info",
	  "debug, info, warn or error" },
	{ "AUTH_MODE", "--auth-mode", K_AUTH, offsetof(struct config, auth_mode), "open",
	  "open (no credentials, loopback only) or jwt (user tokens)" },
	{ "AUTH_JWT_SECRET", "--auth-jwt-secret", K_STR, offsetof(struct config, auth_jwt_secret), NULL,
	  "HS256 secret of user tokens (jwt mode)" },
	{ "AUTH_JWT_PUBLIC_KEY_FILE", "--auth-jwt-public-key-file", K_STR,
	  offsetof(struct config, auth_jwt_public_key_file), NULL,
	  "PEM public key of RS256 user tokens (jwt mode)" },
	{ "AUTH_JWT_SECRET_PREVIOUS", "--auth-jwt-secret-previous", K_STR,
	  offsetof(struct config, auth_jwt_secret_previous), NULL,
	  "previous HS256 secret, still accepted during a rotation" },
	{ "AUTH_JWT_PUBLIC_KEY_PREVIOUS_FILE", "--auth-jwt-public-key-previous-file", K_STR,
	  offsetof(struct config, auth_jwt_public_key_previous_file), NULL,
	  "previous RS256 public key, still accepted during a rotation" },
	{ "START_RATE_PER_MIN", "--start-rate-per-min", K_COUNT, offsetof(struct config, start_rate_per_min),
	  "60", "call starts per user per minute (0: no limit)" },
	{ NULL, "--insecure-public", K_FLAG, offsetof(struct config, insecure_public), NULL,
	  "allow a non-loopback HTTP_HOST in open mode" },
	{ "STATE_ENGINE", "--state-engine", K_STR, offsetof(struct config, state_engine), "memory",
	  "where calls live: memory (one instance) or redis (instances sharing REDIS_URL)" },
	{ "REDIS_URL", "--redis-url", K_STR, offsetof(struct config, redis_url), "redis://127.0.0.1:6379",
	  "Redis of STATE_ENGINE=redis: redis://[:password@]host[:port][/db], or its sentinels: "
	  "redis-sentinel://[:password@]host[:port][,host[:port]...]/master[/db]" },
	{ "PRESENCE_REFRESH_S", "--presence-refresh-s", K_SECONDS,
	  offsetof(struct config, presence_refresh_s), "60",
	  "seconds between presence refreshes of devices that refresh; silent 2.5 times that: offline (0: no "
	  "lease)" },
	{ "LOG_FORMAT", "--log-format", K_LOG_FORMAT, offsetof(struct config, log_format), "text",
	  "text (one line per event) or json (one JSON object per line)" },
	{ "METRICS_TOKEN", "--metrics-token", K_STR, offsetof(struct config, metrics_token), NULL,
	  "bearer token GET /metrics requires (unset: /metrics is open)" },
	{ "WEBHOOK_URLS", "--webhook-urls", K_STR, offsetof(struct config, webhook_urls), NULL,
	  "URLs the signed webhooks are POSTed to, separated by commas (unset: none)" },
	{ "WEBHOOK_SECRET", "--webhook-secret", K_STR, offsetof(struct config, webhook_secret), NULL,
	  "HS256 secret that signs the webhooks (required with WEBHOOK_URLS)" },
	{ "WEBHOOK_TIMEOUT_S", "--webhook-timeout-s", K_SECONDS, offsetof(struct config, webhook_timeout_s),
	  "5", "seconds one webhook delivery attempt may take" },
	{ "WEBHOOK_RETRY_S", "--webhook-retry-s", K_SECONDS, offsetof(struct config, webhook_retry_s), "300",
	  "seconds a failed webhook is retried (with backoff) before it is dropped" },
	{ "WEBHOOK_QUEUE_MAX", "--webhook-queue-max", K_COUNT, offsetof(struct config, webhook_queue_max),
	  "10000", "webhooks waiting per URL at most; newer ones are dropped beyond" },
	{ "RING_OFFLINE_S", "--ring-offline-s", K_SECONDS, offsetof(struct config, ring_offline_s), "0",
	  "seconds a call to a user with no online device rings, waiting for a push to wake one (0: "
	  "refused as offline; needs WEBHOOK_URLS)" },
	{ "CALL_HISTORY_MAX", "--call-history-max", K_COUNT, offsetof(struct config, call_history_max), "100",
	  "finished calls kept per user for GET /calls (0: none)" },
	{ "WEBHOOK_CONCURRENCY", "--webhook-concurrency", K_COUNT,
	  offsetof(struct config, webhook_concurrency), "4",
	  "webhook deliveries in flight per URL (each call's webhooks stay in order)" },
};

#define NOPTIONS (sizeof(options) / sizeof(options[0]))

static void usage(FILE *out, const char *prog)
{
	fprintf(out,
		"Usage: %s [options]\n\nCall-signalling service for 1:1 LiveKit calls.\n"
		"Every option is also an environment variable; options win.\n\n",
		prog);
	for (size_t i = 0; i < NOPTIONS; i++) {
		const struct option *o = &options[i];
		char left[128];
		snprintf(left, sizeof(left), "%s%s%s", o->flag, o->kind == K_FLAG ? "" : " ",
			 o->kind == K_FLAG ? "" : (o->env ? o->env : ""));
		if (strlen(left) > 42)
			fprintf(out, "  %s\n  %-42s %s", left, "", o->help);
		else
			fprintf(out, "  %-42s %s", left, o->help);
		if (o->def)
			fprintf(out, " (default %s)", o->def);
		fputc('\n', out);
	}
	fprintf(out, "  %-42s %s\n  %-42s %s\n", "--help", "show this help", "--version", "show the version");
}

static int set_value(struct config *cfg, const struct option *o, const char *v, const char *source)
{
	void *field = (char *)cfg + o->offset;
	char *end;
	errno = 0;
	switch (o->kind) {
	case K_STR:
	case K_LEVEL:
	case K_LOG_FORMAT: {
		char **s = field;
		enum log_level l;
		enum log_format f;
		if (o->kind == K_LEVEL && log_level_parse(v, &l) != 0)
			goto bad;
		if (o->kind == K_LOG_FORMAT && log_format_parse(v, &f) != 0)
			goto bad;
		free(*s);
		*s = *v ? xstrdup(v) : NULL;
		return 0;
	}
	case K_PORT:
	case K_COUNT: {
		long n = strtol(v, &end, 10);
		if (errno || end == v || *end || n < 0 || n > (o->kind == K_PORT ? 65535 : 1000000000))
			goto bad;
		*(int *)field = (int)n;
		return 0;
	}
	case K_SECONDS: {
		double d = strtod(v, &end);
		if (errno || end == v || *end || !isfinite(d) || d < 0 || d > 1e7)
			goto bad;
		*(double *)field = d;
		return 0;
	}
	case K_AUTH:
		if (strcasecmp(v, "open") == 0)
			*(enum auth_mode *)field = AUTH_OPEN;
		else if (strcasecmp(v, "jwt") == 0)
			*(enum auth_mode *)field = AUTH_JWT;
		else
			goto bad;
		return 0;
	case K_FLAG:
		*(int *)field = 1;
		return 0;
	}
bad:
	fprintf(stderr, "error: bad value '%s' for %s\n", v, source);
	return -1;
}

static const struct option *find_flag(const char *arg, size_t len)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (strlen(options[i].flag) == len && strncmp(options[i].flag, arg, len) == 0)
			return &options[i];
	return NULL;
}

/* The URL schemes the MQTT client speaks (docs/configuration.md); MQTT_URL
 * may list several brokers separated by commas (spaces around them
 * allowed), each of which must pass. */
static int mqtt_url_scheme_known(const char *url)
{
	static const char *const schemes[] = { "tcp://", "mqtt://", "ssl://", "mqtts://", "ws://", "wss://" };
	for (;;) {
		url += strspn(url, " ");
		size_t len = strcspn(url, ",");
		size_t end = len;
		while (end && url[end - 1] == ' ')
			end--;
		int known = 0;
		for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
			size_t sl = strlen(schemes[i]);
			if (end > sl && strncmp(url, schemes[i], sl) == 0)
				known = 1;
		}
		if (!known)
			return 0;
		if (!url[len])
			return 1;
		url += len + 1;
	}
}

static int check(const struct config *cfg)
{
	if (!cfg->mqtt_url || !mqtt_url_scheme_known(cfg->mqtt_url)) {
		fprintf(
		    stderr,
		    "error: MQTT_URL '%s' is not a broker URL: it must start with tcp://, mqtt://, ssl://, "
		    "mqtts://, ws:// or wss:// and name a host\n",
		    cfg->mqtt_url ? cfg->mqtt_url : "");
		return -1;
	}
	if (cfg->auth_mode == AUTH_JWT && !cfg->auth_jwt_secret && !cfg->auth_jwt_public_key_file) {
		fprintf(stderr, "error: AUTH_MODE=jwt needs AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY_FILE\n");
		return -1;
	}
	if (cfg->auth_mode == AUTH_JWT && cfg->auth_jwt_secret && cfg->auth_jwt_public_key_file) {
		fprintf(stderr, "error: set only one of AUTH_JWT_SECRET and AUTH_JWT_PUBLIC_KEY_FILE\n");
		return -1;
	}
	if (!cfg->state_engine ||
	    (strcmp(cfg->state_engine, "memory") != 0 && strcmp(cfg->state_engine, "redis") != 0)) {
		fprintf(stderr, "error: STATE_ENGINE must be memory or redis\n");
		return -1;
	}
	if (strcmp(cfg->state_engine, "redis") == 0) {
		struct redis_url u;
		const char *why;
		int bad = redis_url_parse(&u, cfg->redis_url ? cfg->redis_url : "", &why);
		redis_url_release(&u);
		if (bad) { /* the URL itself is not printed: it may hold the password */
			fprintf(stderr, "error: REDIS_URL is not a Redis URL: %s\n", why);
			return -1;
		}
	}
	if (cfg->webhook_urls && !cfg->webhook_secret) {
		fprintf(stderr, "error: WEBHOOK_URLS needs WEBHOOK_SECRET to sign the webhooks\n");
		return -1;
	}
	if (cfg->webhook_urls && (cfg->webhook_queue_max < 1 || cfg->webhook_timeout_s <= 0 ||
				  cfg->webhook_concurrency < 1 || cfg->webhook_concurrency > 64)) {
		fprintf(stderr, "error: WEBHOOK_QUEUE_MAX and WEBHOOK_TIMEOUT_S must be above 0, "
				"WEBHOOK_CONCURRENCY from 1 to 64\n");
		return -1;
	}
	if (cfg->ring_offline_s > 0 && !cfg->webhook_urls) {
		fprintf(stderr,
			"error: RING_OFFLINE_S needs WEBHOOK_URLS: the backend pushes to the sleeping "
			"device on call.ringing_offline\n");
		return -1;
	}
	if (cfg->auth_mode == AUTH_OPEN && !cfg->insecure_public &&
	    !config_host_is_loopback(cfg->http_host)) {
		fprintf(
		    stderr,
		    "error: refusing to serve the open (unauthenticated) mode on '%s': use AUTH_MODE=jwt, "
		    "a loopback HTTP_HOST, or --insecure-public\n",
		    cfg->http_host);
		return -1;
	}
	return 0;
}

int config_load(struct config *cfg, int argc, char **argv)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NOPTIONS; i++)
		if (options[i].def && set_value(cfg, &options[i], options[i].def, "default") != 0)
			return 2;
	for (size_t i = 0; i < NOPTIONS; i++) {
		const char *v = options[i].env ? getenv(options[i].env) : NULL;
		if (v && set_value(cfg, &options[i], v, options[i].env) != 0)
			return 2;
	}
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage(stdout, argv[0]);
			return -1;
		}
		if (strcmp(arg, "--version") == 0) {
			printf("callsignal " CALLSIGNAL_VERSION "\n");
			return -1;
		}
		const char *eq = strchr(arg, '=');
		const struct option *o = find_flag(arg, eq ? (size_t)(eq - arg) : strlen(arg));
		if (!o) {
			fprintf(stderr, "error: unknown option '%s' (see --help)\n", arg);
			return 2;
		}
		const char *v = eq ? eq + 1 : NULL;
		if (o->kind == K_FLAG) {
			if (v) {
				fprintf(stderr, "error: %s takes no value\n", o->flag);
				return 2;
			}
			v = "1";
		} else if (!v) {
			if (i + 1 >= argc) {
				fprintf(stderr, "error: %s needs a value\n", o->flag);
				return 2;
			}
			v = argv[++i];
		}
		if (set_value(cfg, o, v, o->flag) != 0)
			return 2;
	}
	return check(cfg) == 0 ? 0 : 2;
}

void config_release(struct config *cfg)
{
	for (size_t i = 0; i < NOPTIONS; i++)
		if (options[i].kind == K_STR || options[i].kind == K_LEVEL ||
		    options[i].kind == K_LOG_FORMAT) {
			char **s = (char **)((char *)cfg + options[i].offset);
			free(*s);
			*s = NULL;
		}
}

int config_host_is_loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strcmp(host, "::1") == 0 || strncmp(host, "127.", 4) == 0;
}
