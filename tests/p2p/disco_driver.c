/* disco_driver.c — test driver for discovery on the libp2p host (mDNS, the Kademlia DHT, the
 * rendezvous records), the C twin of tests/interop/p2p/disco_peer.mjs (not a unit test).
 *
 *   disco_driver --state DIR [--listen MA]... [--dht server|client|off] [--protocol ID]
 *                [--mdns] [--mdns-loopback] [--mdns-interval MS] [--mdns-port N]
 *                [--bootstrap MA]... [--rpc-timeout-ms N] [--rendezvous] [--ns NS]
 *
 * Prints {"peer_id","addrs"} as its first stdout line, then reads one JSON command per stdin
 * line and answers each with one JSON line {"cmd","tag","ok",...} — the commands of
 * disco_peer.mjs: dial, find_peer, get, put, provide, providers, table, mdns_wait, ping; plus
 * {"cmd":"closest","key":TEXT} and {"cmd":"rv_find"} (rendezvous find: {"peers":[{"id","addrs",
 * "how"}]}). With --rendezvous the node publishes itself under the namespace (events
 * {"event":"published",...}). mDNS discoveries are also printed as {"event":"mdns",...}.
 * Runs until stdin closes or SIGTERM (then closes everything gracefully); a watchdog ends it
 * after DISCO_DRIVER_TIMEOUT_S (default 300 s). */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "p2p/host/host.h"
#include "p2p/host/peers.h"
#include "p2p/host/svc_kad.h"
#include "p2p/host/svc_mdns.h"
#include "p2p/host/svc_rendezvous.h"
#include "p2p/proto/kad_record.h"
#include "util/log.h"

static uv_loop_t *loop;
static p2p_host *host;
static p2p_kad *kad;
static p2p_mdns *mdnsv;
static p2p_rendezvous *rv;
static uv_signal_t sigterm;
static uv_pipe_t stdin_pipe;
static uv_timer_t wait_timer;
static bool stopping;
static int pending_closes;

/* mDNS discoveries seen so far (for mdns_wait). */
#define MAX_SEEN 64
static struct {
  char id[PEERID_STR_MAX];
  json_t *addrs;
} seen[MAX_SEEN];
static size_t n_seen;

static void emit(json_t *o) {
  char *s = json_dumps(o, JSON_COMPACT);
  if (s) {
    printf("%s\n", s);
    fflush(stdout);
    free(s);
  }
  json_decref(o);
}

static json_t *reply(const char *cmd, json_t *tag, bool ok) {
  json_t *o = json_pack("{s:s, s:b}", "cmd", cmd, "ok", ok);
  if (tag) json_object_set(o, "tag", tag);
  return o;
}

typedef struct req {
  char cmd[32];
  json_t *tag;
  char want[PEERID_STR_MAX];
  uint64_t deadline;
  struct req *next;
} req;

static req *new_req(const char *cmd, json_t *tag) {
  req *r = calloc(1, sizeof *r);
  snprintf(r->cmd, sizeof r->cmd, "%s", cmd);
  r->tag = tag ? json_incref(tag) : NULL;
  return r;
}

static void finish(req *r, json_t *o) {
  emit(o);
  json_decref(r->tag);
  free(r);
}

static void fail(req *r, int err) {
  json_t *o = reply(r->cmd, r->tag, false);
  json_object_set_new(o, "error", json_string(strerror(err < 0 ? -err : err)));
  finish(r, o);
}

static json_t *addrs_json(const multiaddr *a, size_t n) {
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    char t[MULTIADDR_STR_MAX];
    if (multiaddr_to_string(&a[i], t, sizeof t) == 0) json_array_append_new(arr, json_string(t));
  }
  return arr;
}

static void stats_into(json_t *o, const p2p_kad_op_stats *st) {
  json_object_set_new(o, "hops", json_integer(st->hops));
  json_object_set_new(o, "queries", json_integer(st->queries));
  json_object_set_new(o, "elapsed_ms", json_integer((json_int_t)st->elapsed_ms));
}

/* ---------------------------------------------------------------- command results */

static void on_peers(p2p_kad *k, int err, const kad_peer_info *peers, size_t n, const p2p_kad_op_stats *st, void *ud) {
  (void)k;
  req *r = ud;
  if (err) {
    fail(r, err);
    return;
  }
  json_t *o = reply(r->cmd, r->tag, true);
  stats_into(o, st);
  if (!strcmp(r->cmd, "find_peer")) {
    json_object_set_new(o, "addrs", addrs_json(peers[0].addrs, peers[0].n_addrs));
  } else {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
      char id[PEERID_STR_MAX];
      if (peerid_to_string(&peers[i].id, id, sizeof id)) continue;
      json_array_append_new(arr, json_pack("{s:s, s:o}", "id", id, "addrs", addrs_json(peers[i].addrs, peers[i].n_addrs)));
    }
    json_object_set_new(o, !strcmp(r->cmd, "providers") ? "providers" : "peers", arr);
  }
  finish(r, o);
}

static void on_value(p2p_kad *k, int err, const uint8_t *v, size_t n, const char *from, const p2p_kad_op_stats *st,
                     void *ud) {
  (void)k;
  req *r = ud;
  if (err) {
    fail(r, err);
    return;
  }
  json_t *o = reply(r->cmd, r->tag, true);
  stats_into(o, st);
  json_object_set_new(o, "value", json_stringn((const char *)v, n));
  json_object_set_new(o, "from", json_string(from));
  finish(r, o);
}

static void on_done(p2p_kad *k, int err, size_t acked, const p2p_kad_op_stats *st, void *ud) {
  (void)k;
  req *r = ud;
  if (err) {
    fail(r, err);
    return;
  }
  json_t *o = reply(r->cmd, r->tag, true);
  stats_into(o, st);
  json_object_set_new(o, "acked", json_integer((json_int_t)acked));
  finish(r, o);
}

static void on_ping(int err, uint64_t rtt_us, void *ud) {
  req *r = ud;
  if (err) {
    fail(r, err);
    return;
  }
  json_t *o = reply(r->cmd, r->tag, true);
  json_object_set_new(o, "rtt_ms", json_real((double)rtt_us / 1000.0));
  finish(r, o);
}

/* mdns_wait requests poll the seen list. */
static req *waiting;

static void check_waits(void) {
  uint64_t now = uv_now(loop);
  for (req **pp = &waiting; *pp;) {
    req *r = *pp;
    json_t *addrs = NULL;
    for (size_t i = 0; i < n_seen && !addrs; i++)
      if (!strcmp(seen[i].id, r->want)) addrs = seen[i].addrs;
    if (addrs || now >= r->deadline) {
      *pp = r->next;
      if (addrs) {
        json_t *o = reply(r->cmd, r->tag, true);
        json_object_set(o, "addrs", addrs);
        finish(r, o);
      } else {
        fail(r, -ETIMEDOUT);
      }
      continue;
    }
    pp = &r->next;
  }
}

static void wait_tick(uv_timer_t *t) {
  (void)t;
  check_waits();
}

static void on_mdns_peer(p2p_mdns *m, const mdns_peer *p, void *ud) {
  (void)m;
  (void)ud;
  json_t *addrs = addrs_json(p->addrs, p->n_addrs);
  emit(json_pack("{s:s, s:s, s:O, s:i}", "event", "mdns", "id", p->peer_id, "addrs", addrs, "ttl", (int)p->ttl_s));
  size_t i = 0;
  while (i < n_seen && strcmp(seen[i].id, p->peer_id)) i++;
  if (i == n_seen && n_seen < MAX_SEEN) {
    snprintf(seen[n_seen].id, sizeof seen[n_seen].id, "%s", p->peer_id);
    n_seen++;
  }
  if (i < n_seen) {
    json_decref(seen[i].addrs);
    seen[i].addrs = addrs;
  } else {
    json_decref(addrs);
  }
  check_waits();
}

static void on_rv_found(p2p_rendezvous *r, int err, const p2p_rendezvous_peer *peers, size_t n, void *ud) {
  (void)r;
  req *q = ud;
  if (err) {
    fail(q, err);
    return;
  }
  json_t *o = reply(q->cmd, q->tag, true);
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append_new(arr, json_pack("{s:s, s:o, s:i}", "id", peers[i].peer_id, "addrs",
                                         addrs_json(peers[i].addrs, peers[i].n_addrs), "how", (int)peers[i].how));
  json_object_set_new(o, "peers", arr);
  finish(q, o);
}

static void on_published(p2p_rendezvous *r, int err, size_t record_acks, size_t provider_acks, void *ud) {
  (void)r;
  (void)ud;
  emit(json_pack("{s:s, s:i, s:i, s:i}", "event", "published", "error", err, "record_acks", (int)record_acks,
                 "provider_acks", (int)provider_acks));
}

/* ---------------------------------------------------------------- commands */

static void on_dial_open(p2p_stream *s, int err, void *ud) {
  req *r = ud;
  if (err) {
    fail(r, err);
    return;
  }
  json_t *o = reply(r->cmd, r->tag, true);
  json_object_set_new(o, "peer", json_string(p2p_stream_remote_peer(s)));
  p2p_stream_reset(s); /* the connection stays */
  finish(r, o);
}

static void run_command(json_t *c) {
  const char *cmd = json_string_value(json_object_get(c, "cmd"));
  json_t *tag = json_object_get(c, "tag");
  if (!cmd) return;
  req *r = new_req(cmd, tag);
  const char *key = json_string_value(json_object_get(c, "key"));
  const char *ns = json_string_value(json_object_get(c, "ns"));
  const char *id = json_string_value(json_object_get(c, "id"));
  int rc = -EINVAL;
  if (!strcmp(cmd, "dial")) {
    const char *addr = json_string_value(json_object_get(c, "addr"));
    if (addr) rc = p2p_host_open_stream(host, addr, "/ipfs/ping/1.0.0", on_dial_open, r);
  } else if (!strcmp(cmd, "ping")) {
    if (id) rc = p2p_host_ping(host, id, on_ping, r);
  } else if (!strcmp(cmd, "mdns_wait")) {
    if (id) {
      snprintf(r->want, sizeof r->want, "%s", id);
      json_int_t t = json_integer_value(json_object_get(c, "timeout_ms"));
      r->deadline = uv_now(loop) + (uint64_t)(t > 0 ? t : 30000);
      r->next = waiting;
      waiting = r;
      check_waits();
      return;
    }
  } else if (!kad) {
    rc = -ENOTSUP;
  } else if (!strcmp(cmd, "find_peer")) {
    if (id) rc = p2p_kad_find_peer(kad, id, on_peers, r);
  } else if (!strcmp(cmd, "closest")) {
    if (key) rc = p2p_kad_closest_peers(kad, (const uint8_t *)key, strlen(key), on_peers, r);
  } else if (!strcmp(cmd, "get")) {
    if (key) rc = p2p_kad_get_value(kad, (const uint8_t *)key, strlen(key), on_value, r);
  } else if (!strcmp(cmd, "put")) {
    const char *v = json_string_value(json_object_get(c, "value"));
    if (key && v) rc = p2p_kad_put_value(kad, (const uint8_t *)key, strlen(key), (const uint8_t *)v, strlen(v), on_done, r);
  } else if (!strcmp(cmd, "provide") || !strcmp(cmd, "providers")) {
    if (ns) {
      uint8_t mh[KAD_PROVIDER_KEY_LEN];
      kad_rendezvous_provider_key(ns, mh);
      rc = !strcmp(cmd, "provide") ? p2p_kad_provide(kad, mh, sizeof mh, on_done, r)
                                   : p2p_kad_find_providers(kad, mh, sizeof mh, 20, on_peers, r);
    }
  } else if (!strcmp(cmd, "rv_find")) {
    rc = rv ? p2p_rendezvous_find(rv, on_rv_found, r) : -ENOTSUP;
  } else if (!strcmp(cmd, "table")) {
    p2p_kad_stats st;
    p2p_kad_get_stats(kad, &st);
    json_t *o = reply(cmd, tag, true);
    json_object_set_new(o, "size", json_integer((json_int_t)st.table_size));
    json_object_set_new(o, "rpcs_in", json_integer((json_int_t)st.rpcs_in));
    json_object_set_new(o, "rpcs_out", json_integer((json_int_t)st.rpcs_out));
    finish(r, o);
    return;
  }
  if (rc) fail(r, rc);
}

/* ---------------------------------------------------------------- stdin */

static char line[1 << 16];
static size_t line_len;

static void closed_one(void *ud) {
  (void)ud;
  if (--pending_closes == 0 && host) {
    p2p_host *h = host;
    host = NULL;
    p2p_host_close(h, NULL, NULL);
  }
}

static void stop_all(void) {
  if (stopping) return;
  stopping = true;
  uv_signal_stop(&sigterm);
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&wait_timer, NULL);
  if (!uv_is_closing((uv_handle_t *)&stdin_pipe)) uv_close((uv_handle_t *)&stdin_pipe, NULL);
  while (waiting) {
    req *r = waiting;
    waiting = r->next;
    fail(r, -ECANCELED);
  }
  pending_closes = 1;
  if (rv) {
    pending_closes++;
    p2p_rendezvous_close(rv, closed_one, NULL);
    rv = NULL;
  }
  if (kad) {
    pending_closes++;
    p2p_kad_close(kad, closed_one, NULL);
    kad = NULL;
  }
  if (mdnsv) {
    pending_closes++;
    p2p_mdns_close(mdnsv, closed_one, NULL);
    mdnsv = NULL;
  }
  closed_one(NULL);
}

static void on_sigterm(uv_signal_t *s, int sig) {
  (void)s;
  (void)sig;
  stop_all();
}

static void stdin_alloc(uv_handle_t *h, size_t n, uv_buf_t *b) {
  (void)h;
  (void)n;
  static char tmp[4096];
  b->base = tmp;
  b->len = sizeof tmp;
}

static void stdin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b) {
  (void)s;
  if (n < 0) {
    stop_all();
    return;
  }
  for (ssize_t i = 0; i < n; i++) {
    char ch = b->base[i];
    if (ch != '\n') {
      if (line_len < sizeof line - 1) line[line_len++] = ch;
      continue;
    }
    line[line_len] = 0;
    line_len = 0;
    json_error_t e;
    json_t *c = json_loads(line, 0, &e);
    if (c) {
      run_command(c);
      json_decref(c);
    }
    if (stopping) return;
  }
}

static void on_identify(p2p_host *h, const p2p_event *ev, void *ud) {
  (void)h;
  (void)ud;
  if (kad && ev->peer_id) p2p_kad_peer_identified(kad, ev->peer_id);
}

static void bootstrap_done(p2p_kad *k, int err, size_t acked, const p2p_kad_op_stats *st, void *ud) {
  (void)k;
  (void)st;
  (void)ud;
  emit(json_pack("{s:s, s:i, s:i}", "event", "bootstrap", "error", err, "answered", (int)acked));
}

static void watchdog(int sig) {
  (void)sig;
  static const char m[] = "{\"error\":\"disco_driver watchdog timeout\"}\n";
  ssize_t w = write(2, m, sizeof m - 1);
  (void)w;
  _exit(3);
}

static void usage(void) {
  fprintf(stderr, "usage: disco_driver --state DIR [--listen MA]... [--dht server|client|off] [--protocol ID] "
                  "[--mdns] [--mdns-loopback] [--mdns-interval MS] [--mdns-port N] [--bootstrap MA]...\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *state = NULL, *dht = "server", *protocol = NULL;
  const char *listens[8], *boots[16];
  size_t n_listen = 0, n_boot = 0;
  bool use_mdns = false, mdns_loop = false, publish = false;
  const char *ns = NULL;
  unsigned mdns_interval = 0, mdns_port = 0, rpc_timeout = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--state") && v) state = argv[++i];
    else if (!strcmp(a, "--listen") && v && n_listen < 8) listens[n_listen++] = argv[++i];
    else if (!strcmp(a, "--dht") && v) dht = argv[++i];
    else if (!strcmp(a, "--protocol") && v) protocol = argv[++i];
    else if (!strcmp(a, "--mdns")) use_mdns = true;
    else if (!strcmp(a, "--mdns-loopback")) mdns_loop = true;
    else if (!strcmp(a, "--mdns-interval") && v) mdns_interval = (unsigned)atoi(argv[++i]);
    else if (!strcmp(a, "--mdns-port") && v) mdns_port = (unsigned)atoi(argv[++i]);
    else if (!strcmp(a, "--bootstrap") && v && n_boot < 16) boots[n_boot++] = argv[++i];
    else if (!strcmp(a, "--rpc-timeout-ms") && v) rpc_timeout = (unsigned)atoi(argv[++i]);
    else if (!strcmp(a, "--rendezvous")) publish = true;
    else if (!strcmp(a, "--ns") && v) ns = argv[++i];
    else usage();
  }
  if (!state) usage();
  const char *lvl = getenv("DISCO_DRIVER_LOG");
  log_level ll = LOG_WARNING;
  if (lvl && log_level_parse(lvl, &ll) != 0) ll = LOG_WARNING;
  log_set_level(ll);
  signal(SIGALRM, watchdog);
  alarm(getenv("DISCO_DRIVER_TIMEOUT_S") ? (unsigned)atoi(getenv("DISCO_DRIVER_TIMEOUT_S")) : 300);
  signal(SIGPIPE, SIG_IGN);
  if (sodium_init() < 0) return 1;
  loop = uv_default_loop();
  p2p_host_config cfg = {.state_dir = state, .no_peerstore_file = true};
  int rc = p2p_host_new(loop, &cfg, &host);
  if (rc) {
    fprintf(stderr, "host: %s\n", strerror(-rc));
    return 1;
  }
  if (!n_listen) listens[n_listen++] = "/ip4/127.0.0.1/tcp/0";
  for (size_t i = 0; i < n_listen; i++)
    if ((rc = p2p_host_listen(host, listens[i]))) {
      fprintf(stderr, "listen %s: %s\n", listens[i], strerror(-rc));
      return 1;
    }
  if (p2p_host_subscribe(host, P2P_EV_PEER_IDENTIFIED | P2P_EV_IDENTIFY_PUSH, on_identify, NULL) != 0) return 1;
  if (strcmp(dht, "off") != 0) {
    p2p_kad_config kc = {.protocol = protocol, .server = !strcmp(dht, "server"), .rpc_timeout_ms = rpc_timeout};
    if ((rc = p2p_kad_new(host, loop, &kc, &kad)) || (rc = p2p_kad_start(kad))) {
      fprintf(stderr, "kad: %s\n", strerror(-rc));
      return 1;
    }
  }
  if (use_mdns) {
    p2p_mdns_config mc = {.engine = {.allow_loopback = mdns_loop, .query_interval_ms = mdns_interval},
                          .port = (uint16_t)mdns_port};
    if ((rc = p2p_mdns_new(host, loop, &mc, on_mdns_peer, NULL, &mdnsv)) || (rc = p2p_mdns_start(mdnsv))) {
      fprintf(stderr, "mdns: %s\n", strerror(-rc));
      return 1;
    }
  }
  const char *addrs[16];
  size_t n = p2p_host_listen_addrs(host, addrs, 16);
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    char full[MULTIADDR_STR_MAX + PEERID_STR_MAX + 8];
    snprintf(full, sizeof full, "%s/p2p/%s", addrs[i], p2p_host_peer_id(host));
    json_array_append_new(arr, json_string(full));
  }
  emit(json_pack("{s:s, s:o}", "peer_id", p2p_host_peer_id(host), "addrs", arr));
  if (kad && n_boot && (rc = p2p_kad_bootstrap(kad, boots, n_boot, bootstrap_done, NULL)))
    fprintf(stderr, "bootstrap: %s\n", strerror(-rc));
  if (kad) {
    p2p_rendezvous_config rc_cfg = {.ns = ns, .publish = publish};
    if ((rc = p2p_rendezvous_new(kad, host, loop, &rc_cfg, &rv)) || (rc = p2p_rendezvous_start(rv, on_published, NULL))) {
      fprintf(stderr, "rendezvous: %s\n", strerror(-rc));
      return 1;
    }
  }
  uv_timer_init(loop, &wait_timer);
  uv_timer_start(&wait_timer, wait_tick, 100, 100);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigterm, on_sigterm, SIGTERM);
  uv_pipe_init(loop, &stdin_pipe, 0);
  if (uv_pipe_open(&stdin_pipe, 0) == 0) uv_read_start((uv_stream_t *)&stdin_pipe, stdin_alloc, stdin_read);
  uv_run(loop, UV_RUN_DEFAULT);
  for (size_t i = 0; i < n_seen; i++) json_decref(seen[i].addrs);
  uv_loop_close(loop);
  return 0;
}
