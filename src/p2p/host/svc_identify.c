/* svc_identify.c — identify as a host service (libp2p/specs identify/README.md):
 *   /ipfs/id/1.0.0       served to every peer, and requested once on every new connection
 *                        (the CONN_OPENED event); the answer goes to the peerstore;
 *   /ipfs/id/push/1.0.0  received and applied; sent to every connected peer that speaks it
 *                        when our protocol list changes (the PROTOCOLS_CHANGED event).
 * After storing an answer it emits PEER_IDENTIFIED (a response) or IDENTIFY_PUSH, and
 * OBSERVED_ADDR when the peer said how it sees us. Our message lists the announced addresses
 * (listen addresses and those added with p2p_host_add_addr: relay circuits, confirmed external
 * ones) plainly and as a signed peer record; a change of either protocols or addresses is
 * pushed. The message codec is sans-I/O in
 * p2p/proto/identify.c. Relayed connections carry no observedAddr from us (the relay's
 * circuit address is not an address of the peer). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/core/envelope.h"
#include "p2p/host/internal.h"
#include "p2p/proto/identify.h"
#include "util/clock.h"
#include "util/log.h"

/* Builds our Identify message for the peer at the other end of stream s into `out`. */
static int identify_build(p2p_host *h, p2p_stream *s, buf *out) {
  identify_msg m;
  memset(&m, 0, sizeof m);
  uint8_t pk[KEYS_PUBLIC_PB_MAX];
  size_t pklen;
  int rc = keys_public_encode(&h->pub, pk, sizeof pk, &pklen);
  if (rc) return rc;
  multiaddr addrs[IDENTIFY_MAX_ADDRS];
  char *protos[IDENTIFY_MAX_PROTOCOLS];
  size_t np = 0;
  for (host_handler *hd = h->handlers; hd && np < IDENTIFY_MAX_PROTOCOLS; hd = hd->next) protos[np++] = hd->protocol;
  m.protocol_version = (char *)IDENTIFY_PROTOCOL_VERSION;
  m.agent_version = h->agent_version;
  m.public_key = pk;
  m.public_key_len = pklen;
  m.listen_addrs = addrs;
  m.n_listen_addrs = host_own_addrs(h, addrs, IDENTIFY_MAX_ADDRS);
  m.protocols = protos;
  m.n_protocols = np;
  const char *ra = p2p_stream_remote_addr(s);
  if (!p2p_stream_is_relayed(s) && ra[0] && multiaddr_parse(ra, &m.observed_addr) == 0 &&
      !multiaddr_is_unix(&m.observed_addr)) /* a socket path is no address the peer could be seen at */
    m.has_observed_addr = true;
  /* The same addresses signed (RFC 0003): js-libp2p keeps a signed record's addresses as
   * certified. seq: wall-clock milliseconds, increasing with every record we make. */
  buf rec;
  buf_init(&rec, ENVELOPE_MAX_BYTES);
  size_t nrec = m.n_listen_addrs < PEER_RECORD_MAX_ADDRS ? m.n_listen_addrs : PEER_RECORD_MAX_ADDRS;
  uint64_t seq = (uint64_t)(clock_wall_s() * 1000.0);
  if (seq <= h->record_seq) seq = h->record_seq + 1;
  h->record_seq = seq;
  if (peer_record_seal(&h->key, seq, addrs, nrec, &rec) == 0) {
    m.signed_peer_record = buf_ptr(&rec);
    m.signed_peer_record_len = buf_len(&rec);
  }
  rc = identify_encode(&m, out);
  buf_free(&rec);
  return rc;
}

static void write_and_close(p2p_stream *s, buf *b) {
  int rc = p2p_stream_write(s, buf_ptr(b), buf_len(b));
  if (rc < 0) p2p_stream_reset(s);
  else p2p_stream_close_write(s);
}

static void noop_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  (void)ud;
}

/* Sends our message on s and closes our side (the identify answer, or a push). */
static void identify_send(p2p_host *h, p2p_stream *s) {
  static const p2p_stream_callbacks cbs = {.on_close = noop_close};
  p2p_stream_set_callbacks(s, &cbs, NULL);
  buf out;
  buf_init(&out, IDENTIFY_MAX_MSG + 16);
  if (identify_build(h, s, &out) == 0) write_and_close(s, &out);
  else p2p_stream_reset(s);
  buf_free(&out);
}

static void identify_serve(p2p_stream *s, void *ud) { identify_send(ud, s); }

/* Reading side (identify response or push). */
typedef struct identify_rx {
  p2p_host *h;
  bool push;
  char peer_id[PEERID_STR_MAX];
  peerid remote;
  uint64_t conn_id;
  buf in;
} identify_rx;

/* The peer's signed peer record (RFC 0003): it must open (a valid envelope of the peer-record
 * domain) and be signed by the peer itself; one that does not is logged and ignored (the rest
 * of the message still counts). The highest seq accepted is kept in the peerstore: a record
 * older than that one is a replay (or a peer whose clock went back) — logged, and the caller
 * ignores the message's addresses too (they are that old view). Returns -ESTALE for such a
 * record, else 0. Its addresses are the ones listenAddrs gives the peerstore. (Not done:
 * marking addresses as certified in the peer table.) */
static int check_signed_record(const identify_rx *rx, const identify_msg *m, peerstore_entry *e) {
  peer_record r;
  int rc = peer_record_open(m->signed_peer_record, m->signed_peer_record_len, &r);
  if (rc == 0 && !peerid_equal(&r.id, &rx->remote)) rc = -EACCES;
  int verdict = 0;
  if (rc == 0) {
    uint64_t known = e->record_seq;
    if (peerstore_note_record_seq(e, r.seq) == -ESTALE) {
      verdict = -ESTALE;
      log_info("p2p identify: older signed peer record, ignored with its addresses", "{s:s, s:I, s:I, s:b}", "peer",
               rx->peer_id, "seq", (json_int_t)r.seq, "known_seq", (json_int_t)known, "push", rx->push);
    } else {
      log_debug("p2p identify: signed peer record", "{s:s, s:I, s:i}", "peer", rx->peer_id, "seq", (json_int_t)r.seq,
                "addrs", (int)r.n_addrs);
    }
  } else {
    log_info("p2p identify: bad signed peer record, ignored", "{s:s, s:s}", "peer", rx->peer_id, "error",
             rc == -EACCES ? "signed by another peer" : strerror(-rc));
  }
  peer_record_clear(&r);
  return verdict;
}

static void identify_apply(identify_rx *rx) {
  const uint8_t *msg;
  size_t msg_len, used;
  if (identify_frame_parse(buf_ptr(&rx->in), buf_len(&rx->in), IDENTIFY_MAX_MSG, &msg, &msg_len, &used) != 0) {
    log_info("p2p identify: bad frame", "{s:s}", "peer", rx->peer_id);
    return;
  }
  identify_msg m;
  if (identify_decode(msg, msg_len, &m) != 0) {
    log_info("p2p identify: bad message", "{s:s}", "peer", rx->peer_id);
    return;
  }
  p2p_host *h = rx->h;
  char observed[MULTIADDR_STR_MAX] = "";
  if (m.has_observed_addr &&
      (multiaddr_is_unix(&m.observed_addr) || multiaddr_to_string(&m.observed_addr, observed, sizeof observed) != 0))
    observed[0] = 0;
  peerstore_entry *e = peerstore_upsert(h->ps, rx->peer_id);
  if (e) {
    if (m.agent_version) (void)!peerstore_set_str(&e->agent_version, m.agent_version, strlen(m.agent_version));
    if (m.protocol_version)
      (void)!peerstore_set_str(&e->protocol_version, m.protocol_version, strlen(m.protocol_version));
    if (m.n_protocols || !rx->push) (void)!peerstore_set_protocols(e, (const char *const *)m.protocols, m.n_protocols);
    bool stale = m.signed_peer_record && check_signed_record(rx, &m, e) == -ESTALE;
    for (size_t i = 0; i < m.n_listen_addrs && !stale; i++) {
      char a[MULTIADDR_STR_MAX];
      if (!multiaddr_is_unix(&m.listen_addrs[i]) && multiaddr_to_string(&m.listen_addrs[i], a, sizeof a) == 0)
        (void)!peerstore_add_addr(e, a); /* a peer's /unix/ path is not taken from the network */
    }
    if (observed[0]) (void)!peerstore_set_str(&e->observed_addr, observed, strlen(observed));
    if (m.public_key) {
      keys_public pk;
      bool match = keys_public_decode(m.public_key, m.public_key_len, &pk) == 0 && peerid_matches_public(&rx->remote, &pk);
      if (!match) log_warn("p2p identify: public key does not match the PeerId", "{s:s}", "peer", rx->peer_id);
      (void)!peerstore_set_public_key(e, m.public_key, m.public_key_len, match);
    }
    e->last_seen = clock_wall_s();
    host_mark_peers_dirty(h);
    log_debug(rx->push ? "p2p identify-push" : "p2p identify", "{s:s, s:s, s:i, s:i}", "peer", rx->peer_id, "agent",
             e->agent_version ? e->agent_version : "", "protocols", (int)e->n_protocols, "listen_addrs",
             (int)m.n_listen_addrs);
  }
  identify_msg_clear(&m);
  p2p_event ev = {.type = rx->push ? P2P_EV_IDENTIFY_PUSH : P2P_EV_PEER_IDENTIFIED,
                  .peer_id = rx->peer_id,
                  .conn_id = rx->conn_id};
  services_emit(h, &ev);
  if (observed[0]) {
    p2p_event oev = {.type = P2P_EV_OBSERVED_ADDR, .peer_id = rx->peer_id, .conn_id = rx->conn_id, .addr = observed};
    services_emit(h, &oev);
  }
}

static void identify_rx_data(p2p_stream *s, const uint8_t *d, size_t n, void *ud) {
  identify_rx *rx = ud;
  if (buf_append(&rx->in, d, n) != 0) p2p_stream_reset(s);
}

static void identify_rx_eof(p2p_stream *s, void *ud) {
  identify_apply(ud);
  p2p_stream_close_write(s);
}

static void identify_rx_close(p2p_stream *s, int err, void *ud) {
  (void)s;
  (void)err;
  identify_rx *rx = ud;
  buf_free(&rx->in);
  free(rx);
}

static const p2p_stream_callbacks identify_rx_cbs = {
    .on_data = identify_rx_data, .on_eof = identify_rx_eof, .on_close = identify_rx_close};

/* Takes over s as the reading side; false (s reset) when out of memory. */
static bool identify_rx_start(p2p_host *h, p2p_stream *s, bool push) {
  identify_rx *rx = calloc(1, sizeof *rx);
  if (!rx) {
    p2p_stream_reset(s);
    return false;
  }
  rx->h = h;
  rx->push = push;
  rx->remote = s->conn->remote;
  rx->conn_id = p2p_stream_conn_id(s);
  snprintf(rx->peer_id, sizeof rx->peer_id, "%s", p2p_stream_remote_peer(s));
  buf_init(&rx->in, IDENTIFY_MAX_MSG + 16);
  p2p_stream_set_callbacks(s, &identify_rx_cbs, rx);
  return true;
}

static void identify_push_serve(p2p_stream *s, void *ud) { (void)identify_rx_start(ud, s, true); }

static void identify_opened(p2p_stream *s, int err, void *ud) {
  if (!s) {
    log_debug("p2p identify stream failed", "{s:i}", "error", err);
    return;
  }
  if (identify_rx_start(ud, s, false)) p2p_stream_close_write(s);
}

static void push_opened(p2p_stream *s, int err, void *ud) {
  (void)err;
  if (s) identify_send(ud, s);
}

static void identify_on_event(p2p_host *h, const p2p_event *ev, void *state) {
  (void)state;
  if (ev->type == P2P_EV_CONN_OPENED) {
    int rc = p2p_host_open_stream_on(h, ev->conn_id, IDENTIFY_PROTOCOL_ID, identify_opened, h);
    if (rc) log_debug("p2p identify not started", "{s:i}", "error", rc);
    return;
  }
  CHECK(ev->type == P2P_EV_PROTOCOLS_CHANGED || ev->type == P2P_EV_ADDRS_CHANGED);
  if (h->closing) return;
  for (p2p_conn *c = h->conns; c; c = c->next) {
    if (!conn_is_usable(c)) continue;
    peerstore_entry *e = peerstore_get(h->ps, c->remote_id);
    if (e && !peerstore_has_protocol(e, IDENTIFY_PUSH_PROTOCOL_ID)) continue;
    (void)!stream_open(c, IDENTIFY_PUSH_PROTOCOL_ID, push_opened, h);
  }
}

static const p2p_service_handler identify_handlers[] = {
    {IDENTIFY_PROTOCOL_ID, identify_serve},
    {IDENTIFY_PUSH_PROTOCOL_ID, identify_push_serve},
};

static const p2p_service identify_service = {
    .name = "identify",
    .handlers = identify_handlers,
    .n_handlers = 2,
    .events = P2P_EV_CONN_OPENED | P2P_EV_PROTOCOLS_CHANGED | P2P_EV_ADDRS_CHANGED,
    .on_event = identify_on_event,
};

int svc_identify_add(p2p_host *h) { return p2p_host_add_service(h, &identify_service, h); }
