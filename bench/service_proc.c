/* The service process of a benchmark phase; see service_proc.h. */
#include "service_proc.h"
#include "stats.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

uint16_t free_tcp_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		die("cannot find a free port: %s", strerror(errno));
	close(fd);
	return ntohs(sa.sin_port);
}

/* environ minus the keys we set, plus ours. Built before fork() so the
 * child only calls async-signal-safe functions. */
static char **build_env(struct service *s, char *own[], int n_own)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = xcalloc(n + (size_t)n_own + 1, sizeof *env);
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int overridden = 0;
		for (int j = 0; j < n_own && !overridden; j++) {
			size_t kl = (size_t)(strchr(own[j], '=') - own[j]) + 1;
			overridden = strncmp(environ[i], own[j], kl) == 0;
		}
		if (!overridden)
			env[k++] = environ[i];
	}
	for (int j = 0; j < n_own; j++)
		env[k++] = own[j];
	(void)s;
	return env;
}

int service_start(struct service *s, double timeout_s)
{
	s->port = free_tcp_port();
	char port_env[32], url_env[512], level_env[64];
	snprintf(port_env, sizeof port_env, "PORT=%u", s->port);
	snprintf(url_env, sizeof url_env, "MQTT_URL=%s", s->mqtt_url);
	snprintf(level_env, sizeof level_env, "LOG_LEVEL=%s", s->log_level ? s->log_level : "warn");
	char *own[16];
	int n_own = 0;
	own[n_own++] = port_env;
	own[n_own++] = url_env;
	own[n_own++] = level_env;
	own[n_own++] = "HTTP_HOST=127.0.0.1";
	own[n_own++] = "START_RATE_PER_MIN=0";
	for (int i = 0; i < 8 && s->env[i]; i++)
		own[n_own++] = (char *)s->env[i];
	char **env = build_env(s, own, n_own);
	int logfd =
	    open(s->log_path ? s->log_path : "/dev/null", O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (logfd < 0)
		die("cannot open the service log '%s': %s", s->log_path, strerror(errno));

	uint64_t t0 = now_ns();
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		dup2(logfd, 2);
		int nullfd = open("/dev/null", O_RDWR);
		dup2(nullfd, 0);
		dup2(nullfd, 1);
		char *argv[] = { (char *)s->bin, NULL };
		execve(s->bin, argv, env);
		_exit(127);
	}
	close(logfd);
	free(env);
	s->pid = pid;

	struct http_conn c = { .fd = -1, .port = s->port };
	uint64_t deadline = t0 + (uint64_t)(timeout_s * 1e9);
	int rc = -1;
	while (now_ns() < deadline) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "loadgen: the service exited during start-up (status %d); see %s\n",
				st, s->log_path ? s->log_path : "its log");
			s->pid = 0;
			break;
		}
		if (service_ready(s, &c) == 200) {
			rc = 0;
			break;
		}
		http_conn_close(&c);
		sleep_s(0.005);
	}
	http_conn_close(&c);
	s->startup_s = (double)(now_ns() - t0) / 1e9;
	if (rc != 0 && s->pid)
		service_stop(s, 2);
	return rc;
}

int service_stop(struct service *s, double timeout_s)
{
	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
	int st = 0;
	for (;;) {
		pid_t r = waitpid(s->pid, &st, WNOHANG);
		if (r == s->pid)
			break;
		if (now_ns() > deadline) {
			fprintf(stderr, "loadgen: the service did not stop on SIGTERM, killing it\n");
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &st, 0);
			s->pid = 0;
			return -1;
		}
		sleep_s(0.002);
	}
	s->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int service_ready(struct service *s, struct http_conn *conn)
{
	if (conn->fd < 0) {
		conn->port = s->port;
		if (http_conn_open(conn, s->port) != 0)
			return -1;
	}
	return http_conn_request(conn, "GET", "/ready", NULL, 2000);
}

int service_health(struct service *s, struct http_conn *conn, long *users, long *calls)
{
	if (conn->fd < 0) {
		conn->port = s->port;
		if (http_conn_open(conn, s->port) != 0)
			return -1;
	}
	int st = http_conn_request(conn, "GET", "/health", NULL, 2000);
	if (st < 0)
		return -1;
	if (users && json_find_long(conn->body, conn->body_len, "users", users) != 0)
		*users = -1;
	if (calls && json_find_long(conn->body, conn->body_len, "calls", calls) != 0)
		*calls = -1;
	return st;
}

double service_wait_counts(struct service *s, long want_users, long want_calls, uint64_t since,
			   double timeout_s, int poll_ms)
{
	struct http_conn c = { .fd = -1, .port = s->port };
	uint64_t deadline = now_ns() + (uint64_t)(timeout_s * 1e9);
	double r = -1;
	long users = -1, calls = -1;
	while (now_ns() < deadline) {
		if (service_health(s, &c, &users, &calls) == 200 && users == want_users &&
		    (want_calls < 0 || calls == want_calls)) {
			r = (double)(now_ns() - since) / 1e9;
			break;
		}
		if (c.fd < 0)
			http_conn_close(&c);
		sleep_s(poll_ms / 1000.0);
	}
	if (r < 0)
		fprintf(stderr,
			"loadgen: waited %.0f s for users=%ld calls=%ld; last seen users=%ld calls=%ld\n",
			timeout_s, want_users, want_calls, users, calls);
	http_conn_close(&c);
	return r;
}

void service_version(const char *bin, char *buf, size_t n)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "'%s' --version 2>&1", bin);
	snprintf(buf, n, "unknown");
	FILE *p = popen(cmd, "r");
	if (!p)
		return;
	char line[256];
	if (fgets(line, sizeof line, p)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0])
			snprintf(buf, n, "%s", line);
	}
	if (pclose(p) != 0)
		snprintf(buf, n, "unknown (no --version)");
}
