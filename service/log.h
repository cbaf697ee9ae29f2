/*
 * log.h - leveled log lines on stderr: "<ISO time> LEVEL message", or with
 * LOG_FORMAT=json one JSON object per line for log shippers:
 * {"time":"<ISO time>","level":"info","msg":"message"}.
 * Messages name what failed, the subject in quotes and the cause; never a secret.
 */
#ifndef CALLSIGNAL_LOG_H
#define CALLSIGNAL_LOG_H

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Returns 0 and sets *out for "debug", "info", "warn", "error"; -1 otherwise. */
int log_level_parse(const char *s, enum log_level *out);
void log_set_level(enum log_level level);

enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };
/* Returns 0 and sets *out for "text" or "json"; -1 otherwise. */
int log_format_parse(const char *s, enum log_format *out);
void log_set_format(enum log_format f);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
