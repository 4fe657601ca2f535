/* log.c — JSON-line logger on stderr (see log.h). */
#include "util/log.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/check.h"
#include "util/jwrite.h"
#include "util/trace.h"

static atomic_int g_level = LOG_INFO;
static atomic_int g_fd = 2;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const k_names[] = {"debug", "info", "notice", "warning", "error", "critical", "off"};

void log_set_level(log_level level) {
  CHECK(level >= LOG_DEBUG && level <= LOG_OFF); /* log_level_parse hands out only these */
  atomic_store(&g_level, (int)level);
}
log_level log_get_level(void) { return (log_level)atomic_load(&g_level); }
int log_enabled(log_level level) { return (int)level >= atomic_load(&g_level) && level < LOG_OFF; }
void log_set_fd(int fd) { atomic_store(&g_fd, fd); }

const char *log_level_name(log_level level) {
  if ((int)level < 0 || (int)level > LOG_OFF) return "info";
  return k_names[level];
}

int log_level_parse(const char *name, log_level *out) {
  if (!name) return -EINVAL;
  for (int i = 0; i <= LOG_OFF; i++) {
    if (strcasecmp(name, k_names[i]) == 0) {
      *out = (log_level)i;
      return 0;
    }
  }
  if (strcasecmp(name, "warn") == 0) { *out = LOG_WARNING; return 0; }
  return -EINVAL;
}

/* Builds the line; NULL when something in it could not be allocated (a line is whole or not
 * written: "ts", "level" and "msg" are promised). */
static char *log_format(log_level level, const char *msg, const char *fmt, va_list ap) {
  json_t *obj = NULL;
  if (fmt) {
    json_error_t err;
    obj = json_vpack_ex(&err, 0, fmt, ap);
    if (obj && !json_is_object(obj)) { json_decref(obj); obj = NULL; }
  }
  if (!obj) obj = json_object();
  if (!obj) return NULL;

  char ts[LOG_TS_MAX];
  log_timestamp(ts);

  /* ts, level, msg first; caller fields after (a caller field never overrides these three). */
  json_t *line = json_object();
  json_object_set_new(line, "ts", json_string(ts));
  json_object_set_new(line, "level", json_string(log_level_name(level)));
  json_object_set_new(line, "msg", json_string(msg ? msg : ""));
  const char *k;
  json_t *v;
  json_object_foreach(obj, k, v) {
    if (!json_object_get(line, k)) json_object_set(line, k, v);
  }
  json_decref(obj);
  trace_scope_log_fields(line); /* the request this thread works for (util/trace.h) */
  char *text = jwrite_dumps(line, JWRITE_ASCII); /* shortest numbers; NULL if anything failed */
  json_decref(line);
  return text;
}

size_t log_timestamp(char out[LOG_TS_MAX]) {
  static _Thread_local time_t t_sec = -1;
  static _Thread_local char t_prefix[LOG_TS_MAX - 6]; /* "YYYY-MM-DDTHH:MM:SS" (years < 10000) */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != t_sec) {
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(t_prefix, sizeof t_prefix, "%04d-%02d-%02dT%02d:%02d:%02d", (tm.tm_year + 1900) % 10000,
             (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100);
    t_sec = ts.tv_sec;
  }
  size_t n = strlen(t_prefix);
  memcpy(out, t_prefix, n);
  int ms = (int)(ts.tv_nsec / 1000000);
  out[n++] = '.';
  out[n++] = (char)('0' + ms / 100);
  out[n++] = (char)('0' + ms / 10 % 10);
  out[n++] = (char)('0' + ms % 10);
  out[n++] = 'Z';
  out[n] = 0;
  return n;
}

static void write_locked(const char *text, size_t n) {
  pthread_mutex_lock(&g_lock);
  int fd = atomic_load(&g_fd);
  size_t off = 0;
  while (off < n) {
    ssize_t wr = write(fd, text + off, n - off);
    if (wr < 0) {
      if (errno == EINTR) continue;
      break;
    }
    off += (size_t)wr;
  }
  pthread_mutex_unlock(&g_lock);
}

void log_write_lines(const char *lines, size_t len) {
  if (len) write_locked(lines, len);
}

void log_vwrite(log_level level, const char *msg, const char *fmt, va_list ap) {
  if ((int)level < atomic_load(&g_level) || level >= LOG_OFF) return;
  /* Logging is best effort: a line that cannot be built is dropped, and its failure is not
   * the caller's (the caller's out-of-memory flag is left as it was). */
  bool caller_oom = alloc_oom_seen();
  alloc_watch w = alloc_watch_begin();
  char *text = log_format(level, msg, fmt, ap);
  bool failed = alloc_watch_end(w);
  alloc_oom_set(caller_oom);
  if (failed || !text) {
    free(text);
    return;
  }
  size_t n = strlen(text);
  text[n] = '\n'; /* the dump leaves a NUL we overwrite; we write n+1 bytes */
  write_locked(text, n + 1);
  free(text);
}

void log_write(log_level level, const char *msg, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vwrite(level, msg, fmt, ap);
  va_end(ap);
}
