/*
 * main.c - starts the service in order, waits for SIGINT/SIGTERM, stops it
 * in reverse order.
 *
 *   hash key -> config -> webhooks -> core -> broker bus -> HTTP API; then wait for a signal.
 *
 * The HTTP API stops first so no request arrives at a stopped core; the bus
 * then sends what its outbox still holds before it disconnects.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>

#include "config.h"
#include "core.h"
#include "dict.h"
#include "http_api.h"
#include "http_server.h"
#include "json_io.h"
#include "log.h"
#include "mqtt_bus.h"
#include "topics.h"
#include "webhooks.h"

/*
 * Keys the hash of every dict (user ids are anyone's choice) with random
 * bytes of this process, before any dict holds an entry.
 */
static int seed_dict_hash(void)
{
	unsigned char key[DICT_HASH_KEY_LEN];
	if (getrandom(key, sizeof(key), 0) != (ssize_t)sizeof(key)) {
		perror("callsignal: cannot read random bytes for the hash key");
		return -1;
	}
	dict_set_hash_key(key);
	return 0;
}

int main(int argc, char **argv)
{
	if (seed_dict_hash() != 0)
		return 1;
	struct config cfg;
	int rc = config_load(&cfg, argc, argv);
	if (rc != 0) {
		config_release(&cfg);
		return rc < 0 ? 0 : rc;
	}
	enum log_level level = LOG_INFO;
	log_level_parse(cfg.log_level, &level);
	log_set_level(level);
	enum log_format format = LOG_FORMAT_TEXT;
	log_format_parse(cfg.log_format, &format);
	log_set_format(format);
	json_io_init();

	/* Block the stop signals in every thread; main waits for them below. */
	sigset_t stop;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	rc = 1;
	struct core *core = core_new(&cfg);
	if (!core) {
		config_release(&cfg);
		return 1;
	}
	struct mqtt_bus *bus = NULL;
	struct http_api *api = NULL;
	struct http_server *http = NULL;
	struct webhooks *hooks = NULL;

	if (cfg.auth_mode == AUTH_OPEN && !config_host_is_loopback(cfg.http_host))
		log_warn("open mode on the public address '%s': anyone who reaches it can act as any user",
			 cfg.http_host);
	if (!cfg.livekit_api_key || !cfg.livekit_api_secret)
		log_warn("LIVEKIT_API_KEY/LIVEKIT_API_SECRET not set: GET /token will answer 500");

	if (cfg.webhook_urls) {
		struct webhooks_config wh_cfg = { cfg.webhook_urls,
						  cfg.webhook_secret,
						  cfg.webhook_timeout_s,
						  cfg.webhook_retry_s,
						  (size_t)cfg.webhook_queue_max,
						  (size_t)cfg.webhook_concurrency };
		hooks = webhooks_start(&wh_cfg);
		if (!hooks)
			goto out;
		core_set_webhooks(core, hooks);
	}

	struct mqtt_bus_config bus_cfg = { cfg.mqtt_url,     cfg.mqtt_username,  cfg.mqtt_password,
					   cfg.mqtt_ca_file, TOPIC_PRESENCE_ALL, TOPIC_CALL_ALL };
	struct mqtt_bus_callbacks bus_cb = { core, core_on_message, core_on_bus_connected, core_on_bus_lost,
					     core_on_bus_synced };
	bus = mqtt_bus_start(&bus_cfg, &bus_cb);
	if (!bus)
		goto out;
	if (core_start(core, bus) != 0)
		goto out_bus;
	api = http_api_new(&cfg, core);
	if (!api)
		goto out_core;
	http = http_server_start_route_limit(cfg.http_host, cfg.port, HTTP_BODY_LIMIT, HTTP_WEBHOOK_PATH,
					     HTTP_WEBHOOK_BODY_LIMIT, http_api_handle, api);
	if (!http)
		goto out_core;
	log_info("listening on http://%s:%d (auth mode %s)", cfg.http_host, http_server_port(http),
		 cfg.auth_mode == AUTH_JWT ? "jwt" : "open");

	int sig = 0;
	sigwait(&stop, &sig);
	log_info("stopping on signal %d", sig);
	rc = 0;

	http_server_stop(http);
out_core:
	core_stop(core);
out_bus:
	mqtt_bus_stop(bus);
out:
	webhooks_stop(hooks);
	http_api_free(api);
	core_free(core);
	config_release(&cfg);
	if (rc == 0)
		log_info("stopped");
	return rc;
}
