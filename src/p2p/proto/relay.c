/* relay.c — circuit relay v2 message codec and reservation vouchers (see relay.h). */
#include "p2p/proto/relay.h"

#include <errno.h>
#include <string.h>

#include "circuit.pb-c.h"
#include "envelope.pb-c.h"
#include "p2p/core/envelope.h"
#include "p2p/proto/pbframe.h"

const uint8_t RELAY_VOUCHER_PAYLOAD_TYPE[2] = {0x03, 0x02};

const char *relay_status_name(uint32_t status) {
  switch (status) {
  case RELAY_OK: return "OK";
  case RELAY_RESERVATION_REFUSED: return "RESERVATION_REFUSED";
  case RELAY_RESOURCE_LIMIT_EXCEEDED: return "RESOURCE_LIMIT_EXCEEDED";
  case RELAY_PERMISSION_DENIED: return "PERMISSION_DENIED";
  case RELAY_CONNECTION_FAILED: return "CONNECTION_FAILED";
  case RELAY_NO_RESERVATION: return "NO_RESERVATION";
  case RELAY_MALFORMED_MESSAGE: return "MALFORMED_MESSAGE";
  case RELAY_UNEXPECTED_MESSAGE: return "UNEXPECTED_MESSAGE";
  default: return "UNKNOWN";
  }
}

/* ---------------------------------------------------------------- encode */

int relay_encode(const relay_msg *m, buf *out) {
  if (m->n_peer_addrs > RELAY_MAX_ADDRS || m->n_rsv_addrs > RELAY_MAX_ADDRS || m->voucher_len > RELAY_MAX_VOUCHER)
    return -E2BIG;
  if (m->has_reservation && m->stop) return -EINVAL;
  ProtobufCBinaryData paddrs[RELAY_MAX_ADDRS], raddrs[RELAY_MAX_ADDRS];
  Circuit__Peer peer = CIRCUIT__PEER__INIT;
  Circuit__Reservation rsv = CIRCUIT__RESERVATION__INIT;
  Circuit__Limit lim = CIRCUIT__LIMIT__INIT;
  if (m->has_peer) {
    peer.has_id = 1;
    peer.id = (ProtobufCBinaryData){m->peer.len, (uint8_t *)m->peer.bytes};
    for (size_t i = 0; i < m->n_peer_addrs; i++)
      paddrs[i] = (ProtobufCBinaryData){m->peer_addrs[i].len, (uint8_t *)m->peer_addrs[i].bytes};
    peer.n_addrs = m->n_peer_addrs;
    peer.addrs = paddrs;
  }
  if (m->has_reservation) {
    rsv.has_expire = 1;
    rsv.expire = m->expire;
    for (size_t i = 0; i < m->n_rsv_addrs; i++)
      raddrs[i] = (ProtobufCBinaryData){m->rsv_addrs[i].len, (uint8_t *)m->rsv_addrs[i].bytes};
    rsv.n_addrs = m->n_rsv_addrs;
    rsv.addrs = raddrs;
    if (m->voucher_len) {
      rsv.has_voucher = 1;
      rsv.voucher = (ProtobufCBinaryData){m->voucher_len, (uint8_t *)m->voucher};
    }
  }
  if (m->has_limit) {
    lim.has_duration = 1;
    lim.duration = m->limit_duration;
    lim.has_data = 1;
    lim.data = m->limit_data;
  }
  Circuit__HopMessage hop = CIRCUIT__HOP_MESSAGE__INIT;
  Circuit__StopMessage stop = CIRCUIT__STOP_MESSAGE__INIT;
  if (m->stop) {
    stop.has_type = 1;
    stop.type = m->type;
    stop.peer = m->has_peer ? &peer : NULL;
    stop.limit = m->has_limit ? &lim : NULL;
    stop.has_status = m->has_status;
    stop.status = m->status;
    return pbframe_pack(&stop.base, RELAY_MAX_MSG, out);
  }
  hop.has_type = 1;
  hop.type = m->type;
  hop.peer = m->has_peer ? &peer : NULL;
  hop.reservation = m->has_reservation ? &rsv : NULL;
  hop.limit = m->has_limit ? &lim : NULL;
  hop.has_status = m->has_status;
  hop.status = m->status;
  return pbframe_pack(&hop.base, RELAY_MAX_MSG, out);
}

/* ---------------------------------------------------------------- decode */

static int addrs_in(ProtobufCBinaryData *in, size_t n, multiaddr *out, size_t *n_out, size_t *skipped) {
  if (n > RELAY_MAX_ADDRS) return -E2BIG;
  *n_out = 0;
  for (size_t i = 0; i < n; i++) {
    if (multiaddr_from_bytes(in[i].data, in[i].len, &out[*n_out]) == 0) (*n_out)++;
    else (*skipped)++;
  }
  return 0;
}

static int peer_in(const Circuit__Peer *p, relay_msg *out) {
  if (!p) return 0;
  if (!p->has_id || peerid_from_bytes(p->id.data, p->id.len, &out->peer) != 0) return -EINVAL;
  out->has_peer = true;
  return addrs_in(p->addrs, p->n_addrs, out->peer_addrs, &out->n_peer_addrs, &out->n_skipped);
}

static void limit_in(const Circuit__Limit *l, relay_msg *out) {
  if (!l) return;
  out->has_limit = true;
  out->limit_duration = l->has_duration ? l->duration : 0;
  out->limit_data = l->has_data ? l->data : 0;
}

int relay_decode(const uint8_t *p, size_t n, bool stop, relay_msg *out) {
  memset(out, 0, sizeof *out);
  out->stop = stop;
  if (n > RELAY_MAX_MSG) return -E2BIG;
  int rc = -EINVAL;
  if (stop) {
    Circuit__StopMessage *m = circuit__stop_message__unpack(NULL, n, p);
    if (!m) return -EINVAL;
    if (m->has_type) {
      out->type = m->type;
      out->has_status = m->has_status;
      out->status = m->status;
      limit_in(m->limit, out);
      rc = peer_in(m->peer, out);
    }
    circuit__stop_message__free_unpacked(m, NULL);
    return rc;
  }
  Circuit__HopMessage *m = circuit__hop_message__unpack(NULL, n, p);
  if (!m) return -EINVAL;
  if (m->has_type) {
    out->type = m->type;
    out->has_status = m->has_status;
    out->status = m->status;
    limit_in(m->limit, out);
    rc = peer_in(m->peer, out);
    if (rc == 0 && m->reservation) {
      const Circuit__Reservation *r = m->reservation;
      out->has_reservation = true;
      out->expire = r->has_expire ? r->expire : 0;
      rc = addrs_in(r->addrs, r->n_addrs, out->rsv_addrs, &out->n_rsv_addrs, &out->n_skipped);
      if (rc == 0 && r->has_voucher) {
        if (r->voucher.len > RELAY_MAX_VOUCHER) rc = -E2BIG;
        else {
          memcpy(out->voucher, r->voucher.data, r->voucher.len);
          out->voucher_len = r->voucher.len;
        }
      }
    }
  }
  circuit__hop_message__free_unpacked(m, NULL);
  return rc;
}

int relay_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len, size_t *consumed) {
  return pbframe_parse(in, n, RELAY_MAX_MSG, msg, msg_len, consumed);
}

/* ---------------------------------------------------------------- vouchers */

int relay_voucher_seal(const keys_private *k, const peerid *peer, uint64_t expiration, buf *out) {
  keys_public pub;
  keys_private_public(k, &pub);
  peerid relay;
  int rc = peerid_from_public(&pub, &relay);
  if (rc) return rc;
  Record__Voucher v = RECORD__VOUCHER__INIT;
  v.has_relay = v.has_peer = v.has_expiration = 1;
  v.relay = (ProtobufCBinaryData){relay.len, relay.bytes};
  v.peer = (ProtobufCBinaryData){peer->len, (uint8_t *)peer->bytes};
  v.expiration = expiration;
  uint8_t payload[2 * PEERID_MAX_BYTES + 32];
  size_t pl = record__voucher__get_packed_size(&v);
  if (pl > sizeof payload) return -E2BIG;
  record__voucher__pack(&v, payload);
  return envelope_seal(k, RELAY_VOUCHER_DOMAIN, RELAY_VOUCHER_PAYLOAD_TYPE, sizeof RELAY_VOUCHER_PAYLOAD_TYPE, payload,
                       pl, out);
}

int relay_voucher_open(const uint8_t *p, size_t n, relay_voucher *out) {
  memset(out, 0, sizeof *out);
  envelope e;
  int rc = envelope_open(p, n, RELAY_VOUCHER_DOMAIN, RELAY_VOUCHER_PAYLOAD_TYPE, sizeof RELAY_VOUCHER_PAYLOAD_TYPE, &e);
  if (rc) return rc;
  Record__Voucher *v = record__voucher__unpack(NULL, e.payload_len, e.payload);
  rc = -EINVAL;
  if (v && v->has_relay && v->has_peer && v->has_expiration &&
      peerid_from_bytes(v->relay.data, v->relay.len, &out->relay) == 0 &&
      peerid_from_bytes(v->peer.data, v->peer.len, &out->peer) == 0) {
    out->expiration = v->expiration;
    rc = peerid_equal(&out->relay, &e.signer_id) ? 0 : -EACCES;
  }
  if (v) record__voucher__free_unpacked(v, NULL);
  envelope_clear(&e);
  if (rc) memset(out, 0, sizeof *out);
  return rc;
}
