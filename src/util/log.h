/* log.h — structured logging: one JSON object per line on stderr.
 *
 * Every line has "ts" (RFC 3339 UTC, milliseconds), "level" and "msg"; callers add fields with a
 * jansson pack format, e.g.
 *     log_write(LOG_INFO, "listening", "{s:s, s:i}", "addr", addr, "port", port);
 * stdout is never touched: in stdio mode it belongs to MCP. Numbers in the fields are printed in
 * their shortest exact form (util/jwrite.h): 0.457, never 0.45700000000000002.
 * Thread-safe: a line is written with one write(2) under a mutex, so lines never interleave. */
#ifndef PEERMCP_UTIL_LOG_H
#define PEERMCP_UTIL_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
  LOG_DEBUG = 0,
  LOG_INFO = 1,
  LOG_NOTICE = 2,
  LOG_WARNING = 3,
  LOG_ERROR = 4,
  LOG_CRITICAL = 5,
  LOG_OFF = 6
} log_level;

/* Lines below `level` are dropped. Default LOG_INFO. */
void log_set_level(log_level level);
log_level log_get_level(void);

/* Parses "debug", "info", "notice", "warning"/"warn", "error", "critical", "off". Returns 0 or -EINVAL. */
int log_level_parse(const char *name, log_level *out) __attribute__((warn_unused_result));
const char *log_level_name(log_level level);

/* True when a line at `level` would be written (cheap: check it before building fields). */
int log_enabled(log_level level);

/* Redirect output to fd (default 2). For tests. */
void log_set_fd(int fd);

/* The "ts" value of a line written now ("2026-12-06T23:39:21.031Z"), without the quotes; the
 * date part is formatted once per second per thread. Returns the length. */
#define LOG_TS_MAX 32
size_t log_timestamp(char out[LOG_TS_MAX]);

/* Writes complete lines built by the caller (each a JSON object and a '\n', e.g. the
 * dispatcher's access log) in one write(2), under the same lock as every other line. */
void log_write_lines(const char *lines, size_t len);

/* fmt: NULL or a json_pack format that builds an object of extra fields. */
void log_write(log_level level, const char *msg, const char *fmt, ...);
void log_vwrite(log_level level, const char *msg, const char *fmt, va_list ap);

#define log_debug(msg, ...) log_write(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) log_write(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_write(LOG_WARNING, msg, __VA_ARGS__)
#define log_error(msg, ...) log_write(LOG_ERROR, msg, __VA_ARGS__)

#endif
