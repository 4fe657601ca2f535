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

static atomic_int g_level = LOG_INFO;
static atomic_int g_fd = 2;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const k_names[] = {"debug", "info", "notice", "warning", "error", "critical", "off"};

void log_set_level(log_level level) {
  CHECK(level >= LOG_DEBUG && level <= LOG_OFF); /* log_level_parse hands out only these */
  atomic_store(&g_level, (int)level);
}
log_level log_get_level(void) { return (log_level)atomic_load(&g_level); }
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

  struct timeval tv;
  gettimeofday(&tv, NULL);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char ts[64];
  snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000));

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
  char *text = alloc_json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
  json_decref(line);
  return text;
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
  text[n] = '\n'; /* json_dumps leaves a NUL we overwrite; we write n+1 bytes */
  pthread_mutex_lock(&g_lock);
  int fd = atomic_load(&g_fd);
  size_t off = 0;
  while (off < n + 1) {
    ssize_t wr = write(fd, text + off, n + 1 - off);
    if (wr < 0) {
      if (errno == EINTR) continue;
      break;
    }
    off += (size_t)wr;
  }
  pthread_mutex_unlock(&g_lock);
  free(text);
}

void log_write(log_level level, const char *msg, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  log_vwrite(level, msg, fmt, ap);
  va_end(ap);
}
