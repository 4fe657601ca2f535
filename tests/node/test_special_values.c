/* test_special_values.c — every special value docs/config.md and docs/command-tools.md document
 * ("0 = never", "0 = no limit", "disable", …) does what the page says, through a real node built
 * from a configuration (issue 9 item 7: `rate_limit_per_second: 0` was documented as "no
 * limit" and became 100/s; `prune_after_seconds: 0`, "never prune", pruned every terminal task).
 *
 * One table: a row per documented special value, each with a check that fails if the value
 * means something else — and, where the contrast is cheap, a check that the ordinary value
 * behaves differently (so the check can fail). test_docs_special_values_are_all_tested reads
 * the two pages and fails for a documented special value that has no row here. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "node/node.h"
#include "util/clock.h"
#include "util/log.h"
#include "support/tmpdir.h"

#ifndef PEERMCP_SOURCE_ROOT
#define PEERMCP_SOURCE_ROOT "."
#endif

static char g_dir[TS_TMPDIR_MAX];
static int g_seq;

static int setup(void **state) {
  (void)state;
  ts_tmpdir_make(g_dir, "special");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  assert_int_equal(ts_tmpdir_remove(g_dir), 0);
  log_set_fd(2);
  log_set_level(LOG_WARNING);
  return 0;
}

/* A configuration in a fresh state directory; `extra` is more top-level JSON (", \"k\": …"). */
static void load_cfg(config *cfg, char *state, size_t cap, const char *extra) {
  snprintf(state, cap, "%s/n%d", g_dir, ++g_seq);
  char text[4096], err[512];
  snprintf(text, sizeof text, "{\"state_dir\": \"%s\", \"log_level\": \"warning\"%s}", state, extra);
  if (config_load_text(cfg, text, strlen(text), NULL, NULL, err, sizeof err) != 0) fail_msg("config: %s", err);
}

static node *open_start(const config *cfg, node_options o) {
  o.name = "t";
  node *n = NULL;
  char err[512];
  if (node_open(cfg, &o, &n, err, sizeof err) != 0) fail_msg("node_open: %s", err);
  if (node_start(n, err, sizeof err) != 0) fail_msg("node_start: %s", err);
  return n;
}

/* ---------------------------------------------------------------- queue.prune_after_seconds */

/* A completed task, then the maintenance pass: kept with 0 ("never prune"), deleted once older
 * than a non-zero age. */
static bool prune_keeps_completed_task(const char *value) {
  config cfg;
  char state[300], extra[128];
  snprintf(extra, sizeof extra, ", \"queue\": {\"prune_after_seconds\": %s}", value);
  load_cfg(&cfg, state, sizeof state, extra);
  node_options o = {.store = true};
  node *n = NULL;
  char err[256];
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  tq_queue *q = node_queue(n);
  assert_non_null(q);
  json_t *payload = json_object();
  tq_submit_req r = {.task_type = "t", .payload = payload};
  char id[33];
  bool replayed;
  assert_int_equal(tq_submit(q, &r, id, &replayed), 0);
  json_decref(payload);
  tq_claim_opts co = {.worker_id = "w"};
  tq_task *t = NULL;
  assert_int_equal(tq_claim_next(q, &co, &t), 0);
  assert_non_null(t);
  tq_fence f = {"w", t->lease_epoch};
  assert_int_equal(tq_complete(q, id, &f, TQ_COMPLETED, NULL, NULL), 0);
  tq_task_free(t);
  uv_sleep(1100); /* older than 1 s */
  assert_int_equal(tq_maintain(q), 0);
  t = NULL;
  int rc = tq_get(q, id, &t);
  tq_task_free(t);
  node_close(n);
  config_free(&cfg);
  return rc == 0;
}

static void check_prune_after_seconds(void) {
  assert_true(prune_keeps_completed_task("0"));
  assert_false(prune_keeps_completed_task("1")); /* the contrast: an age prunes */
}

/* ---------------------------------------------------------------- cache.default_ttl_seconds */

static json_t *record_after_set(const char *value) {
  config cfg;
  char state[300], extra[128];
  snprintf(extra, sizeof extra, ", \"cache\": {\"default_ttl_seconds\": %s}", value);
  load_cfg(&cfg, state, sizeof state, extra);
  node_options o = {.store = true};
  node *n = NULL;
  char err[256];
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  json_t *v = json_integer(7);
  assert_int_equal(ttlcache_set(node_cache(n), "k", v, NULL), 0); /* no TTL given: the default */
  json_decref(v);
  char name[70], path[512];
  ttlcache_key_filename("k", name);
  snprintf(path, sizeof path, "%s/cache/%s", state, name);
  json_t *rec = json_load_file(path, 0, NULL);
  node_close(n);
  config_free(&cfg);
  assert_non_null(rec);
  return rec;
}

static void check_default_ttl_seconds(void) {
  json_t *rec = record_after_set("0");
  assert_true(json_is_null(json_object_get(rec, "expires_at"))); /* 0 = no expiry */
  json_decref(rec);
  rec = record_after_set("60");
  assert_true(json_is_number(json_object_get(rec, "expires_at")));
  json_decref(rec);
}

/* ---------------------------------------------------------------- p2p.announce_file */

static bool announce_written(const char *extra_p2p, const char *env) {
  if (env) setenv("IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE", env, 1);
  config cfg;
  char state[300], extra[512];
  snprintf(extra, sizeof extra, ", \"p2p\": {\"listen\": [\"/ip4/127.0.0.1/tcp/0\"]%s}", extra_p2p);
  load_cfg(&cfg, state, sizeof state, extra);
  unsetenv("IPFS_ACCELERATE_PY_TASK_P2P_ANNOUNCE_FILE");
  node *n = open_start(&cfg, (node_options){.host = NODE_HOST_LISTEN});
  char path[512];
  snprintf(path, sizeof path, "%s/announce.json", state);
  struct stat st;
  bool written = stat(path, &st) == 0;
  node_close(n);
  config_free(&cfg);
  return written;
}

static void check_announce_file(void) {
  assert_false(announce_written(", \"announce_file\": \"\"", NULL));
  assert_false(announce_written(", \"announce_file\": null", NULL));
  for (const char **v = (const char *[]){"0", "false", "no", "off", NULL}; *v; v++)
    assert_false(announce_written("", *v));
  assert_true(announce_written("", NULL)); /* the contrast: the default writes it */
}

/* ---------------------------------------------------------------- network fixture */

typedef struct net {
  config cs, cc;
  char ss[300], sc[300];
  uv_loop_t loop;
  node *server, *client;
  svc_client *c;
} net;

/* A serving node and a dialing client on one loop; the client presents the token unless
 * `stranger` (then it holds no scope: the stranger's frame bucket applies). */
static void net_open_as(net *x, const char *server_p2p, bool stranger) {
  char extra[1024];
  snprintf(extra, sizeof extra,
           ", \"p2p\": {\"listen\": [\"/ip4/127.0.0.1/tcp/0\"], \"token\": \"tok\", \"max_streams_per_peer\": 4096%s}",
           server_p2p);
  load_cfg(&x->cs, x->ss, sizeof x->ss, extra);
  load_cfg(&x->cc, x->sc, sizeof x->sc, stranger ? "" : ", \"p2p\": {\"token\": \"tok\"}");
  assert_int_equal(uv_loop_init(&x->loop), 0);
  node_options os = {.name = "server", .loop = &x->loop, .store = true, .tools = true, .service = true,
                     .host = NODE_HOST_LISTEN};
  node_options oc = {.name = "client", .loop = &x->loop, .host = NODE_HOST_DIAL};
  char err[256];
  assert_int_equal(node_open(&x->cs, &os, &x->server, err, sizeof err), 0);
  assert_int_equal(node_open(&x->cc, &oc, &x->client, err, sizeof err), 0);
  assert_int_equal(node_start(x->server, err, sizeof err), 0);
  assert_int_equal(node_start(x->client, err, sizeof err), 0);
  char path[512];
  snprintf(path, sizeof path, "%s/announce.json", x->ss);
  json_t *ann = json_load_file(path, 0, NULL);
  assert_non_null(ann);
  assert_int_equal(node_dial(x->client, json_string_value(json_object_get(ann, "multiaddr")), &x->c), 0);
  json_decref(ann);
}

static void net_open(net *x, const char *server_p2p) { net_open_as(x, server_p2p, false); }

static void set_flag(void *ud) { *(int *)ud = 1; }

static void run_until(uv_loop_t *loop, const int *flag, int64_t ms) {
  int64_t end = clock_mono_ms() + ms;
  while (!*flag && clock_mono_ms() < end) {
    if (uv_run(loop, UV_RUN_NOWAIT) == 0) uv_sleep(1);
  }
  if (!*flag) fail_msg("condition not met within %lld ms", (long long)ms);
}

static void net_close(net *x) {
  svc_client_close(x->c);
  int da = 0, db = 0;
  node_stop(x->client, set_flag, &db);
  node_stop(x->server, set_flag, &da);
  run_until(&x->loop, &db, 30000);
  run_until(&x->loop, &da, 30000);
  node_close(x->client);
  node_close(x->server);
  uv_run(&x->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&x->loop), 0);
  config_free(&x->cs);
  config_free(&x->cc);
}

typedef struct many {
  int answered, ok, limited, all_done;
  int n;
  json_t *last;
} many;

static void many_cb(void *ud, int err, json_t *result, json_t *error) {
  many *m = ud;
  m->answered++;
  if (err == 0 && json_is_true(json_object_get(result, "ok"))) {
    m->ok++;
  } else {
    /* say why, so a failure in a loaded run explains itself */
    m->limited++;
    char *e = error ? json_dumps(error, JSON_COMPACT) : NULL, *r = result ? json_dumps(result, JSON_COMPACT) : NULL;
    print_message("op %d of %d not ok: err %d (%s), error %s, result %.200s\n", m->answered, m->n, err,
                  err ? strerror(-err) : "-", e ? e : "none", r ? r : "none");
    free(e);
    free(r);
  }
  if (result) {
    json_decref(m->last);
    m->last = json_incref(result);
  }
  if (m->answered == m->n) m->all_done = 1;
}

/* n status ops (with detail unless `plain`) pipelined on one stream; returns how many were
 * answered ok. */
static int statuses_ok_as(net *x, int n, bool plain, json_t **last) {
  many m = {.n = n};
  for (int i = 0; i < n; i++) {
    json_t *msg = plain ? json_pack("{s:s}", "op", "status") : json_pack("{s:s, s:b}", "op", "status", "detail", 1);
    int rc = svc_client_rpc(x->c, msg, 60000, many_cb, &m);
    if (rc != 0) {
      m.answered++, m.limited++;
      print_message("op %d of %d not queued: %d (%s)\n", i + 1, n, rc, strerror(-rc));
    }
    json_decref(msg);
  }
  if (m.answered == n) m.all_done = 1;
  run_until(&x->loop, &m.all_done, 120000);
  if (m.ok != n) { /* with the client's "timed out before they were sent" warning, if any */
    svc_client_stats cs;
    svc_client_stats_get(x->c, &cs);
    print_message("client: %llu streams opened, %llu retries, %llu refused, %llu paced, %llu given up not ready\n",
                  (unsigned long long)cs.streams_opened, (unsigned long long)cs.retries,
                  (unsigned long long)cs.refused, (unsigned long long)cs.paced, (unsigned long long)cs.abandoned);
  }
  if (last) *last = m.last;
  else json_decref(m.last);
  return m.ok;
}

static int statuses_ok(net *x, int n, json_t **last) { return statuses_ok_as(x, n, false, last); }

/* ---------------------------------------------------------------- p2p.rate_limit_per_second */

/* The bucket applies to callers holding no scope (an authorized caller has its own,
 * p2p.authorized_rate_limit_per_second). The client paces itself by the bucket the server
 * advertises and sends a refused request again, so the limit shows as frames the client held
 * back (paced) or had refused, and as the advertised refill (0 when there is no limit). */
static void check_rate_limit_per_second(void) {
  net x = {0};
  svc_client_stats cs;
  net_open_as(&x, ", \"rate_limit_per_second\": 0", true);
  assert_int_equal(statuses_ok_as(&x, 1500, true, NULL), 1500); /* 0 = no limit: not even a burst cap */
  svc_client_stats_get(x.c, &cs);
  assert_int_equal(cs.paced + cs.refused, 0);
  const json_t *lim = json_object_get(svc_client_server_info(x.c), "limits");
  assert_non_null(lim);
  assert_true(json_number_value(json_object_get(lim, "rate_refill_per_sec")) == 0);
  net_close(&x);
  memset(&x, 0, sizeof x);
  net_open_as(&x, ", \"rate_limit_per_second\": 2", true); /* the contrast: burst 4, then 2/s */
  assert_int_equal(statuses_ok_as(&x, 12, true, NULL), 12);
  svc_client_stats_get(x.c, &cs);
  assert_true(cs.paced + cs.refused > 0);
  lim = json_object_get(svc_client_server_info(x.c), "limits");
  assert_true(json_number_value(json_object_get(lim, "rate_refill_per_sec")) == 2);
  net_close(&x);
}

/* ---------------------------------------------------------------- p2p.workers */

static void check_workers(void) {
  net x = {0};
  json_t *st = NULL;
  net_open(&x, ", \"workers\": 0");
  assert_int_equal(statuses_ok(&x, 1, &st), 1);
  json_t *lw = json_object_get(st, "local_worker");
  assert_true(json_is_false(json_object_get(lw, "enabled"))); /* 0 = none */
  assert_int_equal(json_integer_value(json_object_get(lw, "slots")), 0);
  json_decref(st);
  net_close(&x);
  memset(&x, 0, sizeof x);
  net_open(&x, ", \"workers\": 2");
  assert_int_equal(statuses_ok(&x, 1, &st), 1);
  lw = json_object_get(st, "local_worker");
  assert_true(json_is_true(json_object_get(lw, "enabled")));
  assert_int_equal(json_integer_value(json_object_get(lw, "slots")), 2);
  json_decref(st);
  net_close(&x);
  memset(&x, 0, sizeof x);
  net_open(&x, ", \"workers\": \"auto\""); /* "auto" = the online CPUs, at most 16 */
  assert_int_equal(statuses_ok(&x, 1, &st), 1);
  lw = json_object_get(st, "local_worker");
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  assert_int_equal(json_integer_value(json_object_get(lw, "slots")), ncpu < 1 ? 1 : ncpu > 16 ? 16 : ncpu);
  json_decref(st);
  net_close(&x);
}

/* ---------------------------------------------------------------- p2p.cache_replicate_max_peers */

/* Whether the service configured replication (it logs "p2p cache replication on"). */
static bool replication_on(const char *max_peers) {
  char logf[300];
  snprintf(logf, sizeof logf, "%s/log%d", g_dir, ++g_seq);
  int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  log_set_fd(fd);
  log_set_level(LOG_INFO);
  config cfg;
  char state[300], extra[512];
  snprintf(extra, sizeof extra,
           ", \"p2p\": {\"enabled\": false, \"cache_replicate\": true, \"cache_replicate_max_peers\": %s, "
           "\"cache_replicate_targets\": [\"/ip4/127.0.0.1/tcp/9/p2p/12D3KooWRgVykm3tX7ztRzRyrGC2KCmeUYYWeRsmVDfBwcdvbKUB\"]}",
           max_peers);
  load_cfg(&cfg, state, sizeof state, extra);
  node_options o = {.name = "t", .tools = true, .service = true};
  node *n = NULL;
  char err[256];
  assert_int_equal(node_open(&cfg, &o, &n, err, sizeof err), 0);
  node_close(n);
  config_free(&cfg);
  log_set_fd(2);
  log_set_level(LOG_WARNING);
  close(fd);
  FILE *f = fopen(logf, "r");
  char line[4096];
  bool on = false;
  while (f && fgets(line, sizeof line, f)) on |= strstr(line, "p2p cache replication on") != NULL;
  if (f) fclose(f);
  return on;
}

static void check_cache_replicate_max_peers(void) {
  assert_false(replication_on("0")); /* 0 = none: replication stays off */
  assert_true(replication_on("1"));
}

/* ---------------------------------------------------------------- tools.commands[].timeout_ms */

typedef struct call_done {
  int done;
  mcp_dispatch_status st;
} call_done;
static void call_cb(void *ud, const mcp_call_outcome *o) {
  call_done *d = ud;
  d->st = o->status;
  d->done = 1;
}

static void check_command_timeout_ms(void) {
  config cfg;
  char state[300];
  load_cfg(&cfg, state, sizeof state,
           ", \"tool_timeout_ms\": 300, \"tools\": {\"commands\": [{\"name\": \"slow\", \"argv\": [\"/bin/sleep\", \"20\"],"
           " \"timeout_ms\": 0}]}");
  node_options o = {.name = "t", .tools = true};
  node *n = NULL;
  char err[512];
  if (node_open(&cfg, &o, &n, err, sizeof err) != 0) fail_msg("node_open: %s", err);
  static const mcp_auth local = AUTH_CTX_LOCAL_INIT;
  mcp_call_request req = {.tool = "slow", .auth = &local};
  call_done d = {0};
  int64_t t0 = clock_mono_ms();
  assert_int_equal(mcp_dispatch_start(node_dispatcher(n), &req, call_cb, &d, NULL), 0);
  run_until(node_loop(n), &d.done, 15000);
  int64_t took = clock_mono_ms() - t0;
  assert_int_equal(d.st, MCP_DISPATCH_TIMEOUT); /* 0 = tool_timeout_ms (300 ms), not "no deadline" */
  assert_true(took < 10000);
  node_close(n);
  config_free(&cfg);
}

/* ---------------------------------------------------------------- http.sse_keepalive_seconds */

typedef struct sse_probe {
  uint16_t port;
  int comments; /* ":" lines seen on the GET stream within the window */
  int ok;
  int done;
} sse_probe;

static int tcp_connect(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/* One POST; returns the response head and body (read until the body's JSON closes). */
static int http_post(uint16_t port, const char *session, const char *body, char *out, size_t cap) {
  int fd = tcp_connect(port);
  if (fd < 0) return -1;
  char req[4096];
  int n = snprintf(req, sizeof req,
                   "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nAccept: application/json, text/event-stream\r\n"
                   "Content-Type: application/json\r\nMCP-Protocol-Version: 2025-11-25\r\n%s%s%sContent-Length: %zu\r\n"
                   "Connection: close\r\n\r\n%s",
                   port, session ? "Mcp-Session-Id: " : "", session ? session : "", session ? "\r\n" : "", strlen(body),
                   body);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    return -1;
  }
  size_t got = 0;
  ssize_t r;
  while (got < cap - 1 && (r = read(fd, out + got, cap - 1 - got)) > 0) got += (size_t)r;
  out[got] = 0;
  close(fd);
  return 0;
}

static void *sse_client(void *arg) {
  sse_probe *p = arg;
  char resp[16384];
  const char *init = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
                     "\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}";
  if (http_post(p->port, NULL, init, resp, sizeof resp) != 0) goto out;
  char *h = strcasestr(resp, "\r\nMcp-Session-Id: ");
  if (!h) goto out;
  char sid[256];
  if (sscanf(h + 18, "%255[^\r\n]", sid) != 1) goto out;
  (void)http_post(p->port, sid, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", resp, sizeof resp);
  int fd = tcp_connect(p->port);
  if (fd < 0) goto out;
  char req[1024];
  int n = snprintf(req, sizeof req,
                   "GET /mcp HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nAccept: text/event-stream\r\nMcp-Session-Id: %s\r\n"
                   "MCP-Protocol-Version: 2025-11-25\r\n\r\n",
                   p->port, sid);
  if (write(fd, req, (size_t)n) != n) {
    close(fd);
    goto out;
  }
  struct timeval tv = {0, 200000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[65536];
  size_t got = 0;
  int64_t end = clock_mono_ms() + 3500; /* keep-alive 1 s: at least two comments by then */
  while (clock_mono_ms() < end && got < sizeof buf - 1) {
    ssize_t r = read(fd, buf + got, sizeof buf - 1 - got);
    if (r > 0) got += (size_t)r;
    else if (r == 0) break;
  }
  buf[got] = 0;
  close(fd);
  p->ok = strstr(buf, "200") != NULL && strstr(buf, "text/event-stream") != NULL;
  for (char *line = strstr(buf, "\r\n\r\n"); line; line = strchr(line + 1, '\n'))
    if (line[1] == ':') p->comments++;
out:
  __atomic_store_n(&p->done, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static int sse_comments(const char *keepalive) {
  config cfg;
  char state[300], extra[256];
  snprintf(extra, sizeof extra, ", \"http\": {\"listen\": \"127.0.0.1:0\", \"sse_keepalive_seconds\": %s}", keepalive);
  load_cfg(&cfg, state, sizeof state, extra);
  node *n = open_start(&cfg, (node_options){.tools = true, .http = true});
  char path[512];
  snprintf(path, sizeof path, "%s/http.json", state);
  json_t *u = json_load_file(path, 0, NULL);
  const char *url = json_string_value(json_object_get(u, "url"));
  assert_non_null(url);
  const char *colon = strrchr(url, ':');
  sse_probe p = {.port = (uint16_t)atoi(colon + 1)};
  json_decref(u);
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, sse_client, &p), 0);
  int64_t end = clock_mono_ms() + 30000;
  while (!__atomic_load_n(&p.done, __ATOMIC_SEQ_CST) && clock_mono_ms() < end) {
    if (uv_run(node_loop(n), UV_RUN_NOWAIT) == 0) uv_sleep(1);
  }
  pthread_join(th, NULL);
  node_close(n);
  config_free(&cfg);
  assert_true(p.ok);
  return p.comments;
}

static void check_sse_keepalive_seconds(void) {
  assert_int_equal(sse_comments("0"), 0); /* 0 = never */
  assert_true(sse_comments("1") >= 1);
}

/* ---------------------------------------------------------------- p2p.dht_provide_interval_seconds */

/* The rendezvous service's republish interval the node derives from the configuration:
 * UINT32_MAX is "publish once" (svc_rendezvous.h); 0 in the file and ≤ 0 in the variable give it. */
static uint32_t republish_ms(const char *file_value, const char *env) {
  if (env) setenv("IPFS_ACCELERATE_PY_TASK_P2P_DHT_PROVIDE_INTERVAL_S", env, 1);
  config cfg;
  char state[300], extra[256];
  snprintf(extra, sizeof extra, ", \"p2p\": {\"dht_provide_interval_seconds\": %s}", file_value);
  load_cfg(&cfg, state, sizeof state, extra);
  unsetenv("IPFS_ACCELERATE_PY_TASK_P2P_DHT_PROVIDE_INTERVAL_S");
  p2p_discovery_config d;
  node_discovery_config(&cfg, true, &d);
  uint32_t ms = d.rv_cfg.republish_interval_ms;
  config_free(&cfg);
  return ms;
}

static void check_dht_provide_interval_seconds(void) {
  assert_true(republish_ms("0", NULL) == UINT32_MAX); /* 0 = publish once */
  assert_true(republish_ms("60", "-5") == UINT32_MAX); /* ≤ 0 in the variable */
  assert_true(republish_ms("60", "0") == UINT32_MAX);
  assert_int_equal(republish_ms("60", NULL), 60000);
}

/* ---------------------------------------------------------------- p2p.bootstrap */

/* The bootstrap list the node hands discovery: `0`/`false`/`no`/`off` in the variable = none,
 * even in the public profile (whose default is the four libp2p peers). */
static size_t bootstrap_count(const char *env) {
  if (env) setenv("IPFS_ACCELERATE_PY_TASK_P2P_BOOTSTRAP_PEERS", env, 1);
  config cfg;
  char state[300];
  load_cfg(&cfg, state, sizeof state, ", \"p2p\": {\"profile\": \"public\"}");
  unsetenv("IPFS_ACCELERATE_PY_TASK_P2P_BOOTSTRAP_PEERS");
  p2p_discovery_config d;
  node_discovery_config(&cfg, true, &d);
  size_t n = d.n_bootstrap;
  config_free(&cfg);
  return n;
}

static void check_bootstrap(void) {
  assert_true(bootstrap_count(NULL) > 0); /* the contrast: public's default list */
  for (const char **w = (const char *[]){"0", "false", "no", "off", NULL}; *w; w++)
    assert_int_equal(bootstrap_count(*w), 0);
}

/* ---------------------------------------------------------------- p2p.worker_claim_wait_seconds */

/* A `worker --peer` node claiming from a serving node with an empty queue. 0 = poll: claims
 * are answered again and again; a wait: the server has seen the claim (the claimer is in its
 * scheduler table) and holds it, so none is answered for a while. */
static void check_worker_claim_wait_seconds(void) {
  for (int waiting = 0; waiting < 2; waiting++) {
    net x = {0};
    net_open(&x, "");
    char path[512];
    snprintf(path, sizeof path, "%s/announce.json", x.ss);
    json_t *ann = json_load_file(path, 0, NULL);
    const char *peers[] = {json_string_value(json_object_get(ann, "multiaddr"))};
    config wc;
    char ws[300], extra[160];
    snprintf(extra, sizeof extra, ", \"p2p\": {\"token\": \"tok\", \"worker_claim_wait_seconds\": %d}", waiting ? 30 : 0);
    load_cfg(&wc, ws, sizeof ws, extra);
    node_workers_opts wo = {.slots = 1, .peers = peers, .n_peers = 1};
    node_options o = {.name = "worker", .loop = &x.loop, .tools = true, .host = NODE_HOST_DIAL, .workers = &wo};
    node *w = NULL;
    char err[256];
    assert_int_equal(node_open(&wc, &o, &w, err, sizeof err), 0);
    assert_int_equal(node_start(w, err, sizeof err), 0);
    taskq_runner_stats rs;
    int64_t end = clock_mono_ms() + 60000;
    for (;;) {
      if (uv_run(&x.loop, UV_RUN_NOWAIT) == 0) uv_sleep(1);
      node_workers_stats(w, &rs);
      if (!waiting && rs.claims_answered >= 3) break; /* 0 = poll */
      if (waiting) { /* the claim reached the server: the worker is in its scheduler table */
        json_t *st = NULL;
        assert_int_equal(statuses_ok(&x, 1, &st), 1);
        size_t nw = json_array_size(json_object_get(json_object_get(st, "scheduler"), "known_workers"));
        json_decref(st);
        if (nw >= 1) break;
        uv_sleep(50);
      }
      if (clock_mono_ms() > end) fail_msg("no claim within 60 s (answered %llu)", (unsigned long long)rs.claims_answered);
    }
    if (waiting) {
      end = clock_mono_ms() + 2000;
      while (clock_mono_ms() < end)
        if (uv_run(&x.loop, UV_RUN_NOWAIT) == 0) uv_sleep(1);
      node_workers_stats(w, &rs);
      assert_int_equal(rs.claims_answered, 0); /* held by the server, waiting for a task */
    }
    int d = 0;
    node_stop(w, set_flag, &d);
    run_until(&x.loop, &d, 30000);
    node_close(w);
    config_free(&wc);
    json_decref(ann);
    net_close(&x);
  }
}

/* ---------------------------------------------------------------- p2p.authorized_rate_limit_per_second */

/* Callers holding a scope (here the token) draw from their own bucket: 0 = none, even when
 * the strangers' bucket is tight. */
static void check_authorized_rate_limit_per_second(void) {
  net x = {0};
  svc_client_stats cs;
  net_open(&x, ", \"rate_limit_per_second\": 2, \"authorized_rate_limit_per_second\": 0");
  assert_int_equal(statuses_ok(&x, 1500, NULL), 1500);
  svc_client_stats_get(x.c, &cs);
  assert_int_equal(cs.paced + cs.refused, 0);
  net_close(&x);
  memset(&x, 0, sizeof x);
  net_open(&x, ", \"rate_limit_per_second\": 1000, \"authorized_rate_limit_per_second\": 2"); /* contrast */
  assert_int_equal(statuses_ok(&x, 12, NULL), 12);
  svc_client_stats_get(x.c, &cs);
  assert_true(cs.paced + cs.refused > 0);
  net_close(&x);
}

/* ---------------------------------------------------------------- p2p.reserved_connections */

/* With max_connections 2, a second stranger (no token, not trusted) gets a connection only
 * when no slot is reserved: 0 = none; 1 keeps the last slot for known peers. */
static bool second_stranger_served(const char *reserved) {
  net x = {0};
  char extra[200];
  snprintf(extra, sizeof extra, ", \"max_connections\": 2, \"reserved_connections\": %s", reserved);
  net_open_as(&x, extra, true);
  assert_int_equal(statuses_ok_as(&x, 1, true, NULL), 1); /* the first stranger always */
  config cc2;
  char s2[300], err[256];
  load_cfg(&cc2, s2, sizeof s2, "");
  node_options oc = {.name = "client2", .loop = &x.loop, .host = NODE_HOST_DIAL};
  node *c2;
  assert_int_equal(node_open(&cc2, &oc, &c2, err, sizeof err), 0);
  assert_int_equal(node_start(c2, err, sizeof err), 0);
  char path[512];
  snprintf(path, sizeof path, "%s/announce.json", x.ss);
  json_t *ann = json_load_file(path, 0, NULL);
  assert_non_null(ann);
  svc_client *sc2 = NULL;
  assert_int_equal(node_dial(c2, json_string_value(json_object_get(ann, "multiaddr")), &sc2), 0);
  json_decref(ann);
  many m = {.n = 1};
  json_t *msg = json_pack("{s:s}", "op", "status");
  if (svc_client_rpc(sc2, msg, 20000, many_cb, &m) != 0) m.answered++, m.limited++;
  json_decref(msg);
  for (int64_t end = clock_mono_ms() + 60000; m.answered < 1 && clock_mono_ms() < end;)
    if (uv_run(&x.loop, UV_RUN_NOWAIT) == 0) uv_sleep(1);
  assert_int_equal(m.answered, 1);
  json_decref(m.last);
  svc_client_close(sc2);
  int d2 = 0;
  node_stop(c2, set_flag, &d2);
  run_until(&x.loop, &d2, 30000);
  node_close(c2);
  config_free(&cc2);
  net_close(&x);
  return m.ok == 1;
}

static void check_reserved_connections(void) {
  assert_true(second_stranger_served("0"));  /* 0 = none reserved */
  assert_false(second_stranger_served("1")); /* the contrast: the last slot is kept */
}

/* ---------------------------------------------------------------- p2p.relay_hop: 0 = no limit */

/* The relay settings a serving node hands its hop engine for `hop` (more p2p.relay_hop keys).
 * What 0 then does in the engine (more reservations than any cap, a circuit past 128 KiB,
 * nothing cut) is tests/p2p/test_nat.c test_relay_zero_means_no_limit; here: the node passes
 * 0 through, not a default or a minimum. */
static p2p_relay_hop_config hop_cfg_for(const char *hop) {
  config cfg;
  char state[300], extra[256];
  snprintf(extra, sizeof extra, ", \"p2p\": {\"relay_hop\": {\"enabled\": true%s}}", hop);
  load_cfg(&cfg, state, sizeof state, extra);
  p2p_nat_config nc;
  node_nat_config(&cfg, true, &nc);
  assert_true(nc.hop);
  p2p_relay_hop_config h = nc.hop_cfg;
  config_free(&cfg);
  return h;
}

static void check_relay_hop_max_reservations(void) {
  assert_int_equal(hop_cfg_for(", \"max_reservations\": 0").max_reservations, 0);
  assert_int_equal(hop_cfg_for("").max_reservations, 128); /* the contrast: the default cap */
}

static void check_relay_hop_limit_duration_seconds(void) {
  assert_int_equal(hop_cfg_for(", \"limit_duration_seconds\": 0").limit_duration_s, 0);
  assert_int_equal(hop_cfg_for("").limit_duration_s, 120); /* the contrast: 2 min */
}

static void check_relay_hop_limit_data_bytes(void) {
  assert_int_equal(hop_cfg_for(", \"limit_data_bytes\": 0").limit_data, 0);
  assert_int_equal(hop_cfg_for("").limit_data, 131072); /* the contrast: 128 KiB */
  setenv("IPFS_ACCELERATE_PY_TASK_P2P_RELAY_HOP_LIMIT_DATA_BYTES", "0", 1); /* the variable too */
  p2p_relay_hop_config h = hop_cfg_for("");
  unsetenv("IPFS_ACCELERATE_PY_TASK_P2P_RELAY_HOP_LIMIT_DATA_BYTES");
  assert_int_equal(h.limit_data, 0);
}

/* ---------------------------------------------------------------- the table */

typedef struct row {
  const char *doc;  /* the page that documents it */
  const char *key;  /* section.key as the page's tables name it */
  const char *what; /* the documented meaning */
  void (*check)(void);
} row;

static const row k_rows[] = {
    {"config.md", "queue.prune_after_seconds", "0 = never prune", check_prune_after_seconds},
    {"config.md", "cache.default_ttl_seconds", "0 = no expiry", check_default_ttl_seconds},
    {"config.md", "p2p.announce_file", "\"\" / null / 0, false, no, off disable it", check_announce_file},
    {"config.md", "p2p.workers", "`0` = none, `\"auto\"` = the CPUs", check_workers},
    {"config.md", "p2p.rate_limit_per_second", "0 = no limit", check_rate_limit_per_second},
    {"config.md", "p2p.cache_replicate_max_peers", "0 = none (replication stays off)", check_cache_replicate_max_peers},
    {"config.md", "p2p.dht_provide_interval_seconds", "≤ 0 = publish once", check_dht_provide_interval_seconds},
    {"config.md", "p2p.authorized_rate_limit_per_second", "0 = no frame-rate limit for them",
     check_authorized_rate_limit_per_second},
    {"config.md", "p2p.worker_claim_wait_seconds", "0 = poll", check_worker_claim_wait_seconds},
    {"config.md", "p2p.bootstrap", "`0`/`false`/`no`/`off` = none", check_bootstrap},
    {"config.md", "p2p.reserved_connections", "0 = none", check_reserved_connections},
    {"config.md", "p2p.relay_hop.max_reservations", "0 = no limit", check_relay_hop_max_reservations},
    {"config.md", "p2p.relay_hop.limit_duration_seconds", "0 = no limit", check_relay_hop_limit_duration_seconds},
    {"config.md", "p2p.relay_hop.limit_data_bytes", "0 = no limit", check_relay_hop_limit_data_bytes},
    {"config.md", "http.sse_keepalive_seconds", "0 = never", check_sse_keepalive_seconds},
    {"command-tools.md", "commands.timeout_ms", "0 = tool_timeout_ms", check_command_timeout_ms},
};
#define N_ROWS (sizeof k_rows / sizeof k_rows[0])

static void test_special_value(void **state) {
  const row *r = *state;
  print_message("%s: %s\n", r->key, r->what);
  r->check();
}

static int setup_row(void **state) { return setup(state); }

/* The pages' special values: a table row ("| `key` | …") in a section ("### `name`") whose text
 * says "0 = ", "` = none" or "` disable" (a value that turns it off, as `off` disable). Every one
 * must have a row above. */
static void test_docs_special_values_are_all_tested(void **state) {
  (void)state;
  static const char *pages[] = {"config.md", "command-tools.md"};
  int found = 0;
  for (size_t p = 0; p < 2; p++) {
    char path[1024];
    snprintf(path, sizeof path, "%s/docs/%s", PEERMCP_SOURCE_ROOT, pages[p]);
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot read %s", path);
    char line[8192], section[64] = "commands";
    while (fgets(line, sizeof line, f)) {
      if (strncmp(line, "### `", 5) == 0) sscanf(line + 5, "%63[^`]", section);
      else if (strncmp(line, "### ", 4) == 0) snprintf(section, sizeof section, "top");
      if (strncmp(line, "| `", 3) != 0) continue;
      if (!strstr(line, "0 = ") && !strstr(line, "` = none") && !strstr(line, "` disable")) continue;
      char key[64], full[160];
      if (sscanf(line + 3, "%63[^`]", key) != 1) continue;
      if (strcmp(key, "disabled") == 0) continue; /* tools.disabled is a list, not a special value */
      snprintf(full, sizeof full, "%s.%s", section, key);
      bool have = false;
      for (size_t i = 0; i < N_ROWS; i++) have |= strcmp(k_rows[i].key, full) == 0;
      if (!have) fail_msg("docs/%s documents a special value of %s that this table does not test", pages[p], full);
      found++;
    }
    fclose(f);
  }
  assert_int_equal(found, (int)N_ROWS); /* and no row tests a value the pages no longer document */
}

int main(void) {
  log_set_level(LOG_WARNING);
  /* one row, e.g. to run it in a loop under load: TEST_SPECIAL_VALUES_FILTER=p2p.authorized* */
  const char *filter = getenv("TEST_SPECIAL_VALUES_FILTER");
  if (filter && *filter) cmocka_set_test_filter(filter);
  struct CMUnitTest tests[N_ROWS + 1];
  for (size_t i = 0; i < N_ROWS; i++)
    tests[i] = (struct CMUnitTest){k_rows[i].key, test_special_value, setup_row, teardown, (void *)&k_rows[i]};
  tests[N_ROWS] = (struct CMUnitTest){"docs_special_values_are_all_tested", test_docs_special_values_are_all_tested,
                                       NULL, NULL, NULL};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
