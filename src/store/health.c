/* health.c — the stores' state for status, server_info, tool errors and /readyz (health.h). */
#include "store/health.h"

#include <stdio.h>
#include <string.h>

void store_health_probe(tq_queue *q, ttlcache *c) {
  if (q) tq_health_probe(q);
  if (c) ttlcache_health_probe(c);
}

/* down? with the code and reason (into the caller's buffers) */
static bool down_of(tq_queue *q, ttlcache *c, store_kind k, const char **code, char *reason, size_t cap) {
  *code = NULL;
  if (cap) reason[0] = 0;
  if (k == STORE_QUEUE) {
    if (!q) return false;
    tq_health h;
    tq_health_get(q, &h);
    if (!h.down) return false;
    *code = tq_strerror(h.last_err);
    snprintf(reason, cap, "%s", h.reason);
    return true;
  }
  if (!c) return false;
  ttlcache_health h;
  ttlcache_health_get(c, &h);
  if (!h.down) return false;
  *code = ttlcache_strerror(h.last_err);
  snprintf(reason, cap, "%s", h.reason);
  return true;
}

bool store_health_ready(tq_queue *q, ttlcache *c, char *why, size_t whylen) {
  static const char *const names[2] = {"queue", "cache"};
  bool ready = true;
  size_t off = 0;
  if (why && whylen) why[0] = 0;
  for (int k = 0; k < 2; k++) {
    const char *code;
    char reason[400];
    if (!down_of(q, c, (store_kind)k, &code, reason, sizeof reason)) continue;
    ready = false;
    if (why && off < whylen) {
      int w = snprintf(why + off, whylen - off, "%s%s: %s", off ? "; " : "", names[k], reason[0] ? reason : code);
      if (w > 0) off += (size_t)w;
    }
  }
  return ready;
}

json_t *store_health_json(tq_queue *q, ttlcache *c, bool with_paths) {
  json_t *r = json_object();
  if (!r) return NULL;
  bool ok = true;
  /* queue */
  json_t *o = json_object();
  if (!q) {
    json_object_set_new(o, "state", json_string("off"));
  } else {
    tq_health h;
    tq_health_get(q, &h);
    json_object_set_new(o, "state", json_string(h.down ? "down" : "up"));
    if (h.down) {
      ok = false;
      json_object_set_new(o, "error", json_string(tq_strerror(h.last_err)));
      if (with_paths) json_object_set_new(o, "reason", json_string(h.reason));
    }
    if (with_paths) json_object_set_new(o, "path", json_string(tq_path(q)));
    json_object_set_new(o, "errors", json_integer((json_int_t)h.errors));
    if (h.last_err)
      json_object_set_new(o, "last_error", json_pack("{s:s, s:f}", "error", tq_strerror(h.last_err), "at", h.last_err_at));
  }
  json_object_set_new(r, "queue", o);
  /* cache */
  o = json_object();
  if (!c) {
    json_object_set_new(o, "state", json_string("off"));
  } else {
    ttlcache_health h;
    ttlcache_health_get(c, &h);
    ttlcache_stats st;
    ttlcache_stats_get(c, &st);
    json_object_set_new(o, "state", json_string(h.down ? "down" : "up"));
    if (h.down) {
      ok = false;
      json_object_set_new(o, "error", json_string(ttlcache_strerror(h.last_err)));
      if (with_paths) json_object_set_new(o, "reason", json_string(h.reason));
    }
    if (with_paths) json_object_set_new(o, "path", json_string(ttlcache_dir(c)));
    json_object_set_new(o, "errors", json_integer((json_int_t)h.errors));
    if (h.last_err) {
      json_t *le = json_pack("{s:s, s:f}", "error", ttlcache_strerror(h.last_err), "at", h.last_err_at);
      if (le && with_paths && h.last_err_file[0]) json_object_set_new(le, "file", json_string(h.last_err_file));
      json_object_set_new(o, "last_error", le);
    }
    json_object_set_new(o, "corrupt_records", json_integer((json_int_t)st.corrupt));
    if (h.last_corrupt_file[0]) {
      json_t *lc = json_pack("{s:s, s:f}", "reason", h.last_corrupt_reason, "at", h.last_corrupt_at);
      if (lc && with_paths) json_object_set_new(lc, "file", json_string(h.last_corrupt_file));
      json_object_set_new(o, "last_corrupt", lc);
    }
  }
  json_object_set_new(r, "cache", o);
  json_object_set_new(r, "ok", json_boolean(ok));
  return r;
}

void store_health_annotate(tq_queue *q, ttlcache *c, store_kind k, json_t *reply, bool with_paths) {
  const char *code;
  char reason[400];
  if (!reply || !down_of(q, c, k, &code, reason, sizeof reason)) return;
  if (code) json_object_set_new(reply, "cause", json_string(code));
  if (with_paths) {
    if (reason[0]) json_object_set_new(reply, "reason", json_string(reason));
    json_object_set_new(reply, "path", json_string(k == STORE_QUEUE ? tq_path(q) : ttlcache_dir(c)));
  } else {
    json_object_set_new(reply, "reason", json_string(k == STORE_QUEUE ? "the task queue of this node is down"
                                                                      : "the cache of this node is down"));
  }
}
