/* svc_relay.c — the circuit relay v2 client: reservations, dialing through relays, the STOP
 * protocol (see svc_relay.h). */
#include "p2p/host/svc_relay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"
#include "p2p/proto/relay.h"
#include "util/buf.h"
#include "util/check.h"
#include "util/clock.h"
#include "util/log.h"

#define RSV_MAX 16                      /* relays we keep state for */
#define RSV_MAX_ADDRS 4                 /* circuit addresses announced per relay */
#define RSV_BACKOFF_MIN_MS 1000
#define RSV_BACKOFF_MAX_MS (5 * 60 * 1000)
#define RSV_REFRESH_BEFORE_S 300        /* refresh this long before expiry (js does the same) */

typedef enum { RSV_WAITING = 0, RSV_RESERVING, RSV_ACTIVE } rsv_state;

typedef struct rsv {
  p2p_relay_client *rc;
  bool used;
  bool configured;                      /* from `relays` (else a candidate) */
  char target[MULTIADDR_STR_MAX];       /* what we dial: the configured address, or the PeerId */
  char relay_id[PEERID_STR_MAX];
  rsv_state state;
  bool held;                            /* an accepted reservation (until lost) */
  uint64_t expire;                      /* Unix seconds */
  int64_t next_ms;                      /* when to refresh / retry (monotonic) */
  uint32_t backoff_ms;
  uint64_t conn_id;                     /* the relay connection it lives on */
  char *addrs[RSV_MAX_ADDRS];           /* announced circuit addresses */
  size_t n_addrs;
  p2p_relay_limit limit;                /* what the relay states for each circuit (our units) */
  uint32_t limit_duration_raw;          /* Limit.duration as sent */
  int voucher;                          /* 0 none, 1 valid, -1 invalid */
  char error[160];                      /* why the last attempt failed */
  p2p_stream *s;                        /* RESERVE in flight */
  buf in;
} rsv;

typedef struct circ_dial {
  p2p_relay_client *rc;
  p2p_circuit_req *req;                 /* NULL once cancelled */
  p2p_stream *s;
  buf in;
  char relay[MULTIADDR_STR_MAX];
  char peer[PEERID_STR_MAX];
  struct circ_dial *next;
} circ_dial;

typedef struct stop_rx {
  p2p_relay_client *rc;
  p2p_stream *s;
  buf in;
  char relay_addr[MULTIADDR_STR_MAX];
  bool answered;                        /* a refusal was sent: ignore the rest */
  struct stop_rx *next;
} stop_rx;

struct p2p_relay_client {
  p2p_host *h;
  bool reserve, accept, started, stopped;
  bool ignore_limits;
  unsigned pending;                     /* host callbacks still to come (opens, upgrades) */
  bool closing;
  void (*close_done)(void *);
  void *close_ud;
  size_t max_reservations;
  uint32_t max_inbound, inbound;
  char **candidates;
  size_t n_candidates;
  rsv rsvs[RSV_MAX];
  circ_dial *dials;
  stop_rx *stops;                       /* STOP streams being read */
  p2p_reachability reach;
};

static void rsv_start(rsv *r);
static void rc_unpend(p2p_relay_client *rc);

/* ---------------------------------------------------------------- helpers */

static int64_t now_ms(void) { return clock_mono_ms(); }

static uint64_t now_unix(void) { return (uint64_t)clock_wall_s(); }

/* The PeerId a target names (a bare PeerId, or a multiaddr's last /p2p/). */
static int target_peer(const char *target, char *out, size_t cap) {
  peerid pid;
  multiaddr ma;
  if (target[0] == '/') {
    if (multiaddr_parse(target, &ma) != 0 || multiaddr_get_peerid(&ma, &pid) != 0) return -EINVAL;
  } else if (peerid_parse(target, strlen(target), &pid) != 0) {
    return -EINVAL;
  }
  return peerid_to_string(&pid, out, cap) == 0 ? 0 : -EINVAL;
}

static int status_errno(uint32_t status) {
  switch (status) {
  case RELAY_NO_RESERVATION: return -EHOSTUNREACH;
  case RELAY_PERMISSION_DENIED: return -EACCES;
  case RELAY_RESOURCE_LIMIT_EXCEEDED: return -EBUSY;
  case RELAY_CONNECTION_FAILED: return -ECONNREFUSED;
  case RELAY_RESERVATION_REFUSED: return -EBUSY;
  default: return -EPROTO;
  }
}

/* js-libp2p, by its identify agent ("js-libp2p/…"); false while unknown. */
static bool relay_is_js(p2p_host *h, const char *relay_id) {
  p2p_peer_info pi;
  return relay_id && relay_id[0] && p2p_host_peer_info(h, relay_id, &pi) == 0 && pi.agent_version &&
         strncmp(pi.agent_version, "js-libp2p", 9) == 0;
}

/* A Limit as the relay meant it (docs/p2p-nat.md "Limits"). The spec's duration is seconds and
 * its data limit counts each direction; js-libp2p relays write milliseconds into the duration
 * (2 min → 120000) and count both directions together. So: a js relay (by its identify agent)
 * is read the js way; any other value over RELAY_LIMIT_SECONDS_MAX (a day: no relay grants one
 * connection that long, but 120000 is js's default in ms) is read as milliseconds too, for a
 * js relay we have not identified yet; the rest is seconds. */
p2p_relay_limit p2p_relay_limit_of(uint32_t duration, uint64_t data, bool js) {
  p2p_relay_limit l = {.data_bytes = data, .data_total = js};
  if (js || duration > RELAY_LIMIT_SECONDS_MAX) l.duration_ms = duration;
  else l.duration_ms = (uint64_t)duration * 1000u;
  return l;
}

static void rsv_withdraw(rsv *r) {
  for (size_t i = 0; i < r->n_addrs; i++) {
    (void)p2p_host_remove_addr(r->rc->h, r->addrs[i]);
    free(r->addrs[i]);
  }
  r->n_addrs = 0;
}

static void rsv_release_conn(rsv *r) {
  if (r->conn_id) (void)p2p_host_set_keepalive(r->rc->h, r->conn_id, false);
  r->conn_id = 0;
}

/* The reservation is gone: addresses withdrawn, retried after the back-off (unless `quiet`,
 * when we gave it up ourselves). */
static void rsv_lose(rsv *r, const char *why, bool retry) {
  if (r->held)
    log_warn("p2p relay reservation lost", "{s:s, s:s}", "relay", r->relay_id, "reason", why);
  r->held = false;
  rsv_withdraw(r);
  rsv_release_conn(r);
  r->state = RSV_WAITING;
  r->expire = 0;
  if (retry) {
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : RSV_BACKOFF_MIN_MS;
    if (r->backoff_ms > RSV_BACKOFF_MAX_MS) r->backoff_ms = RSV_BACKOFF_MAX_MS;
    r->next_ms = now_ms() + r->backoff_ms;
  } else {
    r->next_ms = 0;
  }
}

/* A RESERVE that did not work: keep what still holds, try again later. */
static void rsv_failed(rsv *r, const char *why) {
  snprintf(r->error, sizeof r->error, "%s", why);
  if (r->s) {
    p2p_stream *s = r->s;
    r->s = NULL;
    p2p_stream_reset(s); /* its on_close sees r->s == NULL */
  }
  buf_reset(&r->in);
  if (r->held && r->expire > now_unix()) { /* the current reservation still holds */
    r->state = RSV_ACTIVE;
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : RSV_BACKOFF_MIN_MS;
    if (r->backoff_ms > RSV_BACKOFF_MAX_MS) r->backoff_ms = RSV_BACKOFF_MAX_MS;
    r->next_ms = now_ms() + r->backoff_ms;
    log_info("p2p relay reservation refresh failed", "{s:s, s:s}", "relay", r->relay_id, "reason", why);
    return;
  }
  if (!r->held) log_info("p2p relay reservation refused", "{s:s, s:s}", "relay", r->relay_id, "reason", why);
  rsv_lose(r, why, true);
}

/* "<relay addr>/p2p/<relay>/p2p-circuit" for a relay address (with or without its /p2p/). */
static int circuit_addr(const multiaddr *relay_addr, const char *relay_id, char *out, size_t cap) {
  multiaddr bare;
  multiaddr_strip_p2p(relay_addr, &bare);
  char t[MULTIADDR_STR_MAX];
  if (multiaddr_to_string(&bare, t, sizeof t) != 0) return -EINVAL;
  if ((size_t)snprintf(out, cap, "%s/p2p/%s/p2p-circuit", t, relay_id) >= cap) return -ENOSPC;
  multiaddr check;
  return multiaddr_parse(out, &check);
}

static void rsv_announce(rsv *r, const relay_msg *m, const char *dialed) {
  char want[RSV_MAX_ADDRS][MULTIADDR_STR_MAX];
  size_t n = 0;
  for (size_t i = 0; i < m->n_rsv_addrs && n < RSV_MAX_ADDRS; i++) {
    peerid pid;
    char id[PEERID_STR_MAX];
    /* an address for another peer is not the relay's */
    if (multiaddr_get_peerid(&m->rsv_addrs[i], &pid) == 0 &&
        (peerid_to_string(&pid, id, sizeof id) != 0 || strcmp(id, r->relay_id) != 0))
      continue;
    if (circuit_addr(&m->rsv_addrs[i], r->relay_id, want[n], sizeof want[n]) == 0) n++;
  }
  multiaddr d;
  if (n == 0 && dialed && dialed[0] && multiaddr_parse(dialed, &d) == 0 &&
      circuit_addr(&d, r->relay_id, want[0], sizeof want[0]) == 0)
    n = 1;
  /* withdraw what is no longer wanted, add what is new */
  for (size_t i = 0; i < r->n_addrs;) {
    bool keep = false;
    for (size_t k = 0; k < n && !keep; k++) keep = strcmp(r->addrs[i], want[k]) == 0;
    if (keep) {
      i++;
      continue;
    }
    (void)p2p_host_remove_addr(r->rc->h, r->addrs[i]);
    free(r->addrs[i]);
    r->addrs[i] = r->addrs[--r->n_addrs];
  }
  for (size_t k = 0; k < n && r->n_addrs < RSV_MAX_ADDRS; k++) {
    bool have = false;
    for (size_t i = 0; i < r->n_addrs && !have; i++) have = strcmp(r->addrs[i], want[k]) == 0;
    if (have) continue;
    char *a = strdup(want[k]);
    if (!a) continue;
    int rc = p2p_host_add_addr(r->rc->h, a);
    if (rc && rc != -EEXIST) {
      free(a);
      continue;
    }
    r->addrs[r->n_addrs++] = a;
  }
}

static void rsv_accepted(rsv *r, const relay_msg *m, p2p_stream *s) {
  p2p_relay_client *rc = r->rc;
  bool refresh = r->held;
  uint64_t conn = p2p_stream_conn_id(s);
  if (r->conn_id && r->conn_id != conn) rsv_release_conn(r);
  r->conn_id = conn;
  (void)p2p_host_set_keepalive(rc->h, conn, true);
  r->held = true;
  r->state = RSV_ACTIVE;
  r->error[0] = 0;
  r->backoff_ms = 0;
  uint64_t now = now_unix();
  r->expire = m->expire;
  if (r->expire <= now) r->expire = now + 60; /* a relay that gave no (or a past) expiry */
  uint64_t ttl = r->expire - now;
  uint64_t refresh_in = ttl > 2 * RSV_REFRESH_BEFORE_S ? ttl - RSV_REFRESH_BEFORE_S : ttl / 2;
  if (refresh_in < 1) refresh_in = 1;
  r->next_ms = now_ms() + (int64_t)refresh_in * 1000;
  r->limit_duration_raw = m->has_limit ? m->limit_duration : 0;
  r->limit = m->has_limit ? p2p_relay_limit_of(m->limit_duration, m->limit_data, relay_is_js(rc->h, r->relay_id))
                          : (p2p_relay_limit){0};
  r->voucher = 0;
  if (m->voucher_len) {
    relay_voucher v;
    peerid me;
    const char *my = p2p_host_peer_id(rc->h);
    bool ok = relay_voucher_open(m->voucher, m->voucher_len, &v) == 0 &&
              peerid_parse(my, strlen(my), &me) == 0 && peerid_equal(&v.peer, &me);
    char vr[PEERID_STR_MAX];
    ok = ok && peerid_to_string(&v.relay, vr, sizeof vr) == 0 && strcmp(vr, r->relay_id) == 0;
    r->voucher = ok ? 1 : -1;
    if (!ok) log_warn("p2p relay voucher invalid (vouchers are advisory; reservation kept)", "{s:s}", "relay", r->relay_id);
  }
  rsv_announce(r, m, p2p_stream_remote_addr(s));
  json_t *addrs = json_array();
  for (size_t i = 0; i < r->n_addrs; i++) json_array_append_new(addrs, json_string(r->addrs[i]));
  log_info(refresh ? "p2p relay reservation refreshed" : "p2p relay reservation made",
           "{s:s, s:I, s:O, s:f, s:I, s:I, s:b, s:s}", "relay", r->relay_id, "expire", (json_int_t)r->expire, "addrs",
           addrs, "limit_duration_s", (double)r->limit.duration_ms / 1000.0, "limit_duration_raw",
           (json_int_t)r->limit_duration_raw, "limit_data_bytes", (json_int_t)r->limit.data_bytes, "data_both_directions",
           r->limit.data_total, "voucher", r->voucher > 0 ? "valid" : r->voucher < 0 ? "invalid" : "none");
  json_decref(addrs); /* "O": a dropped line (below the log level) packs nothing */
}

/* ---------------------------------------------------------------- RESERVE */

static void rsv_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  rsv *r = ud;
  if (r->s != s) return;
  if (buf_append(&r->in, d, n) != 0) {
    rsv_failed(r, "reply too large");
    return;
  }
  const uint8_t *body;
  size_t bl, used;
  int rc = relay_frame_parse(buf_ptr(&r->in), buf_len(&r->in), &body, &bl, &used);
  if (rc == -EAGAIN) return;
  relay_msg *m = malloc(sizeof *m);
  if (!m) {
    rsv_failed(r, "out of memory");
    return;
  }
  if (rc == 0) rc = relay_decode(body, bl, false, m);
  char why[160];
  if (rc) {
    rsv_failed(r, "malformed reply");
  } else if (m->type != RELAY_HOP_STATUS || !m->has_status) {
    rsv_failed(r, "unexpected message");
  } else if (m->status != RELAY_OK) {
    snprintf(why, sizeof why, "relay answered %s", relay_status_name(m->status));
    rsv_failed(r, why);
  } else if (!m->has_reservation) {
    rsv_failed(r, "OK without a reservation");
  } else {
    rsv_accepted(r, m, s);
    r->s = NULL;
    buf_reset(&r->in);
    p2p_stream_close_write(s); /* done; the relay closes its side too */
  }
  free(m);
}

static void rsv_eof(p2p_stream *s, void *ud) {
  rsv *r = ud;
  if (r->s == s) rsv_failed(r, "relay closed the stream without an answer");
  else p2p_stream_close_write(s);
}

static void rsv_close(p2p_stream *s, int err, void *ud) {
  rsv *r = ud;
  if (r->s != s) return;
  r->s = NULL;
  char why[160];
  snprintf(why, sizeof why, "stream closed: %s", err ? strerror(-err) : "no answer");
  rsv_failed(r, why);
}

static const p2p_stream_callbacks rsv_cbs = {.on_data = rsv_data, .on_eof = rsv_eof, .on_close = rsv_close};

static void rsv_opened(p2p_stream *s, int err, void *ud) {
  rsv *r = ud;
  p2p_relay_client *cl = r->rc;
  if (!r->used || r->state != RSV_RESERVING || r->s || cl->stopped) {
    if (s) p2p_stream_reset(s);
    rc_unpend(cl);
    return;
  }
  cl->pending--;
  if (!s) {
    char why[160];
    snprintf(why, sizeof why, "cannot reach the relay: %s", strerror(-err));
    rsv_failed(r, why);
    return;
  }
  if (p2p_stream_is_relayed(s)) { /* spec: no reservations over relayed connections */
    p2p_stream_reset(s);
    rsv_failed(r, "only a relayed connection to the relay");
    return;
  }
  r->s = s;
  buf_reset(&r->in);
  p2p_stream_set_callbacks(s, &rsv_cbs, r);
  relay_msg *m = calloc(1, sizeof *m);
  buf out;
  buf_init(&out, RELAY_MAX_MSG + 16);
  int rc = -ENOMEM;
  if (m) {
    m->type = RELAY_HOP_RESERVE;
    rc = relay_encode(m, &out);
  }
  if (rc == 0 && p2p_stream_write(s, buf_ptr(&out), buf_len(&out)) < 0) rc = -EPIPE;
  buf_free(&out);
  free(m);
  if (rc) rsv_failed(r, "cannot send RESERVE");
}

static void rsv_start(rsv *r) {
  r->state = RSV_RESERVING;
  r->next_ms = 0;
  int rc = p2p_host_open_stream(r->rc->h, r->target, RELAY_HOP_PROTOCOL, rsv_opened, r);
  if (rc) {
    char why[160];
    snprintf(why, sizeof why, "cannot reach the relay: %s", strerror(-rc));
    rsv_failed(r, why);
    return;
  }
  r->rc->pending++;
}

static rsv *rsv_add(p2p_relay_client *rc, const char *target, bool configured) {
  char id[PEERID_STR_MAX];
  if (target_peer(target, id, sizeof id) != 0 || strcmp(id, p2p_host_peer_id(rc->h)) == 0) return NULL;
  for (size_t i = 0; i < RSV_MAX; i++)
    if (rc->rsvs[i].used && strcmp(rc->rsvs[i].relay_id, id) == 0) return NULL;
  for (size_t i = 0; i < RSV_MAX; i++) {
    rsv *r = &rc->rsvs[i];
    if (r->used) continue;
    memset(r, 0, sizeof *r);
    r->used = true;
    r->rc = rc;
    r->configured = configured;
    snprintf(r->target, sizeof r->target, "%s", target);
    snprintf(r->relay_id, sizeof r->relay_id, "%s", id);
    buf_init(&r->in, RELAY_MAX_MSG + 16);
    return r;
  }
  return NULL;
}

static bool want_reservations(const p2p_relay_client *rc) {
  return rc->reserve && rc->started && !rc->stopped && rc->reach != P2P_REACH_PUBLIC;
}

/* ---------------------------------------------------------------- dialing through relays */

static void dial_unlink(circ_dial *cd) {
  for (circ_dial **pp = &cd->rc->dials; *pp; pp = &(*pp)->next)
    if (*pp == cd) {
      *pp = cd->next;
      break;
    }
  buf_free(&cd->in);
  free(cd);
}

/* The dial's end without a stream for the host. */
static void dial_fail(circ_dial *cd, int err, const char *why) {
  if (cd->req) {
    log_info("p2p relayed dial failed", "{s:s, s:s, s:s}", "relay", cd->relay, "peer", cd->peer, "reason", why);
    p2p_circuit_req *req = cd->req;
    cd->req = NULL;
    p2p_circuit_req_done(req, NULL, NULL, 0, err);
  }
}

static void dial_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  circ_dial *cd = ud;
  if (!cd->req) return;
  if (buf_append(&cd->in, d, n) != 0) {
    dial_fail(cd, -EPROTO, "reply too large");
    p2p_stream_reset(s);
    return;
  }
  const uint8_t *body;
  size_t bl, used;
  int rc = relay_frame_parse(buf_ptr(&cd->in), buf_len(&cd->in), &body, &bl, &used);
  if (rc == -EAGAIN) return;
  relay_msg *m = malloc(sizeof *m);
  if (rc == 0) rc = m ? relay_decode(body, bl, false, m) : -ENOMEM;
  if (rc || m->type != RELAY_HOP_STATUS || !m->has_status) {
    free(m);
    dial_fail(cd, -EPROTO, "malformed answer");
    p2p_stream_reset(s);
    return;
  }
  uint32_t status = m->status;
  uint32_t lim_d = m->has_limit ? m->limit_duration : 0;
  p2p_relay_limit lim = m->has_limit ? p2p_relay_limit_of(m->limit_duration, m->limit_data,
                                                          relay_is_js(cd->rc->h, p2p_stream_remote_peer(s)))
                                     : (p2p_relay_limit){0};
  free(m);
  if (status != RELAY_OK) {
    char why[96];
    snprintf(why, sizeof why, "relay answered %s", relay_status_name(status));
    dial_fail(cd, status_errno(status), why);
    p2p_stream_reset(s);
    return;
  }
  log_info("p2p relayed dial: circuit open", "{s:s, s:s, s:f, s:I, s:I, s:b}", "relay", cd->relay, "peer", cd->peer,
           "limit_duration_s", (double)lim.duration_ms / 1000.0, "limit_duration_raw", (json_int_t)lim_d,
           "limit_data_bytes", (json_int_t)lim.data_bytes, "data_both_directions", lim.data_total);
  p2p_circuit_req *req = cd->req;
  cd->req = NULL;
  cd->s = NULL;
  if ((lim.duration_ms || lim.data_bytes) && !cd->rc->ignore_limits) p2p_circuit_req_set_limit(req, &lim);
  /* Whatever followed the STATUS belongs to the relayed connection. */
  p2p_circuit_req_done(req, s, buf_ptr(&cd->in) + used, buf_len(&cd->in) - used, 0);
  dial_unlink(cd); /* the host owns s now: our on_close will not come */
}

static void dial_eof(p2p_stream *s, void *ud) {
  circ_dial *cd = ud;
  dial_fail(cd, -ECONNRESET, "relay closed the stream without an answer");
  p2p_stream_reset(s);
}

static void dial_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  circ_dial *cd = ud;
  dial_fail(cd, err ? err : -ECONNRESET, "stream to the relay closed");
  dial_unlink(cd);
}

static const p2p_stream_callbacks dial_cbs = {.on_data = dial_data, .on_eof = dial_eof, .on_close = dial_close};

static void dial_opened(p2p_stream *s, int err, void *ud) {
  circ_dial *cd = ud;
  p2p_relay_client *cl = cd->rc;
  if (!cd->req) { /* cancelled meanwhile */
    if (s) p2p_stream_reset(s);
    dial_unlink(cd);
    rc_unpend(cl);
    return;
  }
  cl->pending--;
  if (!s) {
    char why[128];
    snprintf(why, sizeof why, "cannot reach the relay: %s", strerror(-err));
    dial_fail(cd, err, why);
    dial_unlink(cd);
    return;
  }
  cd->s = s;
  p2p_stream_set_callbacks(s, &dial_cbs, cd);
  relay_msg *m = calloc(1, sizeof *m);
  buf out;
  buf_init(&out, RELAY_MAX_MSG + 16);
  int rc = -ENOMEM;
  if (m) {
    m->type = RELAY_HOP_CONNECT;
    m->has_peer = peerid_parse(cd->peer, strlen(cd->peer), &m->peer) == 0;
    rc = m->has_peer ? relay_encode(m, &out) : -EINVAL;
  }
  if (rc == 0 && p2p_stream_write(s, buf_ptr(&out), buf_len(&out)) < 0) rc = -EPIPE;
  buf_free(&out);
  free(m);
  if (rc) {
    dial_fail(cd, rc, "cannot send CONNECT");
    p2p_stream_reset(s); /* dial_close frees cd */
  }
}

static int rc_dial(void *ud, p2p_circuit_req *req, const char *relay, const char *peer_id) {
  p2p_relay_client *rc = ud;
  if (rc->stopped) return -ESHUTDOWN;
  circ_dial *cd = calloc(1, sizeof *cd);
  if (!cd) return -ENOMEM;
  cd->rc = rc;
  cd->req = req;
  buf_init(&cd->in, RELAY_MAX_MSG + 16);
  snprintf(cd->relay, sizeof cd->relay, "%s", relay);
  snprintf(cd->peer, sizeof cd->peer, "%s", peer_id);
  cd->next = rc->dials;
  rc->dials = cd;
  int r = p2p_host_open_stream(rc->h, relay, RELAY_HOP_PROTOCOL, dial_opened, cd);
  if (r) {
    cd->req = NULL;
    dial_unlink(cd);
    return r;
  }
  rc->pending++;
  return 0;
}

static void rc_cancel(void *ud, p2p_circuit_req *req) {
  p2p_relay_client *rc = ud;
  for (circ_dial *cd = rc->dials; cd; cd = cd->next) {
    if (cd->req != req) continue;
    cd->req = NULL;
    if (cd->s) p2p_stream_reset(cd->s); /* dial_close frees it */
    return;
  }
}

static const p2p_circuit_dialer k_dialer = {.dial = rc_dial, .cancel = rc_cancel};

/* ---------------------------------------------------------------- STOP: relayed connections to us */

static void stop_send_status(p2p_stream *s, uint32_t status) {
  relay_msg *m = calloc(1, sizeof *m);
  buf out;
  buf_init(&out, RELAY_MAX_MSG + 16);
  if (m) {
    m->stop = true;
    m->type = RELAY_STOP_STATUS;
    m->has_status = true;
    m->status = status;
    if (relay_encode(m, &out) == 0) (void)!p2p_stream_write(s, buf_ptr(&out), buf_len(&out));
  }
  buf_free(&out);
  free(m);
}

typedef struct inbound_ctx {
  p2p_relay_client *rc;
  char src[PEERID_STR_MAX];
  char via[MULTIADDR_STR_MAX];
} inbound_ctx;

static void inbound_upgraded(p2p_host *h, int err, const char *peer_id, uint64_t conn_id, void *ud) {
  (void)h;
  inbound_ctx *ic = ud;
  if (err) {
    log_info("p2p relayed connection failed", "{s:s, s:s, s:s}", "peer", ic->src, "via", ic->via, "error",
             strerror(-err));
  } else {
    log_info("p2p relayed connection accepted", "{s:s, s:s, s:I}", "peer", peer_id, "via", ic->via, "conn_id",
             (json_int_t)conn_id);
  }
  p2p_relay_client *rc = ic->rc;
  if (rc->inbound) rc->inbound--;
  free(ic);
  rc_unpend(rc);
}

static void stop_unlink(stop_rx *sx) {
  p2p_relay_client *rc = sx->rc;
  for (stop_rx **pp = &rc->stops; *pp; pp = &(*pp)->next)
    if (*pp == sx) {
      *pp = sx->next;
      break;
    }
  buf_free(&sx->in);
  free(sx);
  rc_unpend(rc);
}

static void stop_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  stop_rx *sx = ud;
  p2p_relay_client *rc = sx->rc;
  if (sx->answered) return;
  if (buf_append(&sx->in, d, n) != 0) {
    sx->answered = true;
    stop_send_status(s, RELAY_MALFORMED_MESSAGE);
    p2p_stream_close_write(s);
    return;
  }
  const uint8_t *body;
  size_t bl, used;
  int r = relay_frame_parse(buf_ptr(&sx->in), buf_len(&sx->in), &body, &bl, &used);
  if (r == -EAGAIN) return;
  relay_msg *m = malloc(sizeof *m);
  if (r == 0) r = m ? relay_decode(body, bl, true, m) : -ENOMEM;
  uint32_t bad = 0;
  if (r) bad = RELAY_MALFORMED_MESSAGE;
  else if (m->type != RELAY_STOP_CONNECT) bad = RELAY_UNEXPECTED_MESSAGE;
  else if (!m->has_peer) bad = RELAY_MALFORMED_MESSAGE;
  else if (rc->inbound >= rc->max_inbound || rc->stopped) bad = RELAY_RESOURCE_LIMIT_EXCEEDED;
  char src[PEERID_STR_MAX] = "";
  if (!bad && (peerid_to_string(&m->peer, src, sizeof src) != 0 || strcmp(src, p2p_host_peer_id(rc->h)) == 0))
    bad = RELAY_MALFORMED_MESSAGE;
  p2p_relay_limit lim = {0};
  uint32_t lim_raw = 0;
  if (!bad && m->has_limit) {
    lim_raw = m->limit_duration;
    lim = p2p_relay_limit_of(m->limit_duration, m->limit_data, relay_is_js(rc->h, p2p_stream_remote_peer(s)));
  }
  free(m);
  if (bad) {
    log_info("p2p relayed connection refused", "{s:s, s:s}", "relay", p2p_stream_remote_peer(s), "status",
             relay_status_name(bad));
    sx->answered = true;
    stop_send_status(s, bad);
    p2p_stream_close_write(s);
    return;
  }
  inbound_ctx *ic = calloc(1, sizeof *ic);
  if (!ic) {
    sx->answered = true;
    stop_send_status(s, RELAY_CONNECTION_FAILED);
    p2p_stream_close_write(s);
    return;
  }
  ic->rc = rc;
  snprintf(ic->src, sizeof ic->src, "%s", src);
  snprintf(ic->via, sizeof ic->via, "%s", sx->relay_addr);
  stop_send_status(s, RELAY_OK);
  p2p_upgrade_opts o = {.outbound = false,
                        .expected_peer = src,
                        .remote_addr = sx->relay_addr,
                        .initial = buf_ptr(&sx->in) + used,
                        .initial_len = buf_len(&sx->in) - used};
  if (!rc->ignore_limits) o.limit = lim;
  if (lim.duration_ms || lim.data_bytes)
    log_info("p2p relayed connection: the relay's limit", "{s:s, s:s, s:f, s:I, s:I, s:b}", "peer", src, "relay",
             p2p_stream_remote_peer(s), "limit_duration_s", (double)lim.duration_ms / 1000.0, "limit_duration_raw",
             (json_int_t)lim_raw, "limit_data_bytes", (json_int_t)lim.data_bytes, "data_both_directions",
             lim.data_total);
  rc->inbound++;
  rc->pending++;
  r = p2p_host_upgrade_stream(rc->h, s, &o, inbound_upgraded, ic);
  if (r) {
    rc->pending--;
    rc->inbound--;
    free(ic);
    log_info("p2p relayed connection refused", "{s:s, s:s, s:s}", "peer", src, "relay", p2p_stream_remote_peer(s),
             "error", strerror(-r));
    p2p_stream_reset(s);
    return;
  }
  stop_unlink(sx); /* the host owns s: our on_close will not come */
}

static void stop_eof(p2p_stream *s, void *ud) {
  (void)ud;
  p2p_stream_close_write(s);
}

static void stop_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  stop_unlink(ud);
}

static const p2p_stream_callbacks stop_cbs = {.on_data = stop_data, .on_eof = stop_eof, .on_close = stop_close};

void p2p_relay_client_serve_stop(p2p_relay_client *rc, p2p_stream *s) {
  if (!rc->accept || rc->stopped || p2p_stream_is_relayed(s)) {
    stop_send_status(s, RELAY_PERMISSION_DENIED);
    p2p_stream_close_write(s);
    static const p2p_stream_callbacks drop = {0};
    p2p_stream_set_callbacks(s, &drop, NULL);
    return;
  }
  stop_rx *sx = calloc(1, sizeof *sx);
  if (!sx) {
    p2p_stream_reset(s);
    return;
  }
  sx->rc = rc;
  sx->s = s;
  sx->next = rc->stops;
  rc->stops = sx;
  rc->pending++;
  buf_init(&sx->in, RELAY_MAX_MSG + 16);
  snprintf(sx->relay_addr, sizeof sx->relay_addr, "%s/p2p/%s/p2p-circuit", p2p_stream_remote_addr(s),
           p2p_stream_remote_peer(s));
  p2p_stream_set_callbacks(s, &stop_cbs, sx);
}

/* ---------------------------------------------------------------- life cycle, events, tick */

int p2p_relay_client_new(p2p_host *h, const p2p_relay_client_config *cfg, p2p_relay_client **out) {
  p2p_relay_client *rc = calloc(1, sizeof *rc);
  if (!rc) return -ENOMEM;
  rc->h = h;
  rc->reserve = cfg->reserve;
  rc->accept = cfg->accept;
  rc->ignore_limits = cfg->ignore_limits;
  rc->max_reservations = cfg->max_reservations ? cfg->max_reservations : 2;
  rc->max_inbound = cfg->max_inbound ? cfg->max_inbound : 64;
  rc->reach = p2p_host_reachability(h);
  for (size_t i = 0; i < cfg->n_relays; i++)
    if (!rsv_add(rc, cfg->relays[i], true))
      log_warn("p2p relay ignored (not a multiaddr with /p2p/, a duplicate, or too many)", "{s:s}", "relay",
               cfg->relays[i]);
  if (cfg->n_candidates) {
    rc->candidates = calloc(cfg->n_candidates, sizeof *rc->candidates);
    if (!rc->candidates) {
      p2p_relay_client_close(rc, NULL, NULL);
      return -ENOMEM;
    }
    for (size_t i = 0; i < cfg->n_candidates; i++) {
      char id[PEERID_STR_MAX];
      if (target_peer(cfg->candidates[i], id, sizeof id) == 0 && (rc->candidates[rc->n_candidates] = strdup(id)))
        rc->n_candidates++;
    }
  }
  *out = rc;
  return 0;
}

void p2p_relay_client_start(p2p_relay_client *rc) {
  rc->started = true;
  p2p_host_set_circuit_dialer(rc->h, &k_dialer, rc);
}

void p2p_relay_client_stop(p2p_relay_client *rc) {
  if (rc->stopped) return;
  rc->stopped = true;
  if (rc->started) p2p_host_set_circuit_dialer(rc->h, NULL, NULL);
  for (size_t i = 0; i < RSV_MAX; i++) {
    rsv *r = &rc->rsvs[i];
    if (!r->used) continue;
    if (r->s) {
      p2p_stream *s = r->s;
      r->s = NULL;
      p2p_stream_reset(s);
    }
    rsv_withdraw(r);
    rsv_release_conn(r);
    r->held = false;
    r->state = RSV_WAITING;
  }
  for (stop_rx *sx = rc->stops, *next; sx; sx = next) {
    next = sx->next;
    p2p_stream_reset(sx->s); /* stop_close unlinks it */
  }
  /* dials in flight fail now; their streams close with the host */
  for (circ_dial *cd = rc->dials, *next; cd; cd = next) {
    next = cd->next;
    dial_fail(cd, -ESHUTDOWN, "shutting down");
    if (cd->s) p2p_stream_reset(cd->s); /* frees cd */
  }
}

static void rc_finalize(p2p_relay_client *rc) {
  for (size_t i = 0; i < RSV_MAX; i++)
    if (rc->rsvs[i].used) buf_free(&rc->rsvs[i].in);
  for (size_t i = 0; i < rc->n_candidates; i++) free(rc->candidates[i]);
  free(rc->candidates);
  void (*done)(void *) = rc->close_done;
  void *ud = rc->close_ud;
  free(rc);
  if (done) done(ud);
}

/* A host callback came back; the last one after close frees us. */
static void rc_unpend(p2p_relay_client *rc) {
  CHECK(rc->pending > 0);
  if (--rc->pending == 0 && rc->closing) rc_finalize(rc);
}

void p2p_relay_client_close(p2p_relay_client *rc, void (*done)(void *ud), void *ud) {
  if (!rc || rc->closing) return;
  p2p_relay_client_stop(rc);
  rc->closing = true;
  rc->close_done = done;
  rc->close_ud = ud;
  if (rc->pending == 0) rc_finalize(rc);
}

static bool is_candidate(const p2p_relay_client *rc, const char *peer_id) {
  for (size_t i = 0; i < rc->n_candidates; i++)
    if (strcmp(rc->candidates[i], peer_id) == 0) return true;
  return false;
}

static size_t count_used(const p2p_relay_client *rc, bool configured) {
  size_t n = 0;
  for (size_t i = 0; i < RSV_MAX; i++)
    if (rc->rsvs[i].used && rc->rsvs[i].configured == configured) n++;
  return n;
}

void p2p_relay_client_on_event(p2p_relay_client *rc, const p2p_event *ev) {
  if (rc->stopped) return;
  if (ev->type == P2P_EV_CONN_CLOSED) {
    for (size_t i = 0; i < RSV_MAX; i++) {
      rsv *r = &rc->rsvs[i];
      if (!r->used || !r->held || r->conn_id != ev->conn_id) continue;
      r->conn_id = 0; /* gone: nothing to release */
      char why[160];
      snprintf(why, sizeof why, "connection to the relay closed (%s)", ev->err ? strerror(-ev->err) : "normally");
      rsv_lose(r, why, want_reservations(rc));
    }
  } else if (ev->type == P2P_EV_REACHABILITY_CHANGED) {
    rc->reach = ev->reachability;
    if (ev->reachability == P2P_REACH_PUBLIC) {
      for (size_t i = 0; i < RSV_MAX; i++) {
        rsv *r = &rc->rsvs[i];
        if (!r->used || (!r->held && r->state != RSV_RESERVING)) continue;
        if (r->held) log_info("p2p relay reservation released (we are publicly reachable)", "{s:s}", "relay", r->relay_id);
        r->held = false;
        if (r->s) {
          p2p_stream *s = r->s;
          r->s = NULL;
          p2p_stream_reset(s);
        }
        rsv_lose(r, "publicly reachable", false);
      }
    }
  } else if ((ev->type == P2P_EV_PEER_IDENTIFIED || ev->type == P2P_EV_IDENTIFY_PUSH) && rc->reserve &&
             count_used(rc, true) == 0 && is_candidate(rc, ev->peer_id) && count_used(rc, false) < rc->max_reservations) {
    p2p_peer_info pi;
    if (p2p_host_peer_info(rc->h, ev->peer_id, &pi) != 0) return;
    bool hop = false;
    for (size_t i = 0; i < pi.n_protocols && !hop; i++) hop = strcmp(pi.protocols[i], RELAY_HOP_PROTOCOL) == 0;
    if (hop && rsv_add(rc, ev->peer_id, false))
      log_info("p2p relay candidate", "{s:s}", "relay", ev->peer_id);
  }
}

void p2p_relay_client_tick(p2p_relay_client *rc) {
  if (rc->stopped || !rc->started) return;
  int64_t now = now_ms();
  uint64_t unix_now = now_unix();
  bool want = want_reservations(rc);
  for (size_t i = 0; i < RSV_MAX; i++) {
    rsv *r = &rc->rsvs[i];
    if (!r->used) continue;
    if (r->held && r->expire && unix_now >= r->expire && r->state != RSV_RESERVING) rsv_lose(r, "expired", want);
    if (!want || r->state == RSV_RESERVING) continue;
    if (r->next_ms <= now) rsv_start(r);
  }
}

/* ---------------------------------------------------------------- status */

size_t p2p_relay_client_active(const p2p_relay_client *rc) {
  size_t n = 0;
  for (size_t i = 0; i < RSV_MAX; i++)
    if (rc->rsvs[i].used && rc->rsvs[i].held) n++;
  return n;
}

json_t *p2p_relay_client_status_json(const p2p_relay_client *rc) {
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < RSV_MAX; i++) {
    const rsv *r = &rc->rsvs[i];
    if (!r->used) continue;
    json_t *addrs = json_array();
    for (size_t k = 0; k < r->n_addrs; k++) json_array_append_new(addrs, json_string(r->addrs[k]));
    const char *st = r->held ? "active" : r->state == RSV_RESERVING ? "reserving" : "waiting";
    json_t *o = json_pack("{s:s, s:s, s:b, s:I, s:o, s:o, s:s}", "relay", r->relay_id, "state", st, "configured",
                          r->configured, "expire", (json_int_t)r->expire, "addrs", addrs, "limit",
                          p2p_relay_limit_json(&r->limit, r->limit_duration_raw), "voucher",
                          r->voucher > 0 ? "valid" : r->voucher < 0 ? "invalid" : "none");
    if (o && r->error[0]) json_object_set_new(o, "error", json_string(r->error));
    if (o) json_array_append_new(arr, o);
  }
  return arr;
}

json_t *p2p_relay_limit_json(const p2p_relay_limit *l, uint32_t duration_raw) {
  return json_pack("{s:f, s:I, s:I, s:b}", "duration_s", (double)l->duration_ms / 1000.0, "duration_raw",
                   (json_int_t)duration_raw, "data_bytes", (json_int_t)l->data_bytes, "data_both_directions",
                   l->data_total);
}

json_t *p2p_relay_client_circuits_json(p2p_host *h) {
  size_t max = p2p_host_conns(h, NULL, NULL, 0);
  p2p_conn_info *ci = max ? calloc(max, sizeof *ci) : NULL;
  size_t n = ci ? p2p_host_conns(h, NULL, ci, max) : 0;
  if (n > max) n = max;
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < n; i++) {
    if (!ci[i].relayed) continue;
    const p2p_relay_usage *u = &ci[i].relay;
    json_t *o = json_pack("{s:s, s:s, s:s, s:f, s:o, s:I, s:I}", "peer", ci[i].peer_id, "addr",
                          ci[i].remote_addr ? ci[i].remote_addr : "", "direction", ci[i].inbound ? "inbound" : "outbound",
                          "age_s", ci[i].age_s, "limit", p2p_relay_limit_json(&u->limit, 0), "bytes_in",
                          (json_int_t)u->data_in, "bytes_out", (json_int_t)u->data_out);
    if (o && u->left_ms >= 0) json_object_set_new(o, "closes_in_s", json_real((double)u->left_ms / 1000.0));
    if (o) json_object_del(json_object_get(o, "limit"), "duration_raw");
    if (o) json_array_append_new(arr, o);
  }
  free(ci);
  return arr;
}
