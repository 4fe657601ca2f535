/* autonat.c — AutoNAT v1 codec, the server's dial-back choice and the client's tally (see
 * autonat.h). */
#include "p2p/proto/autonat.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "autonat.pb-c.h"
#include "p2p/proto/pbframe.h"

const char *autonat_status_name(uint32_t status) {
  switch (status) {
  case AUTONAT_OK: return "OK";
  case AUTONAT_E_DIAL_ERROR: return "E_DIAL_ERROR";
  case AUTONAT_E_DIAL_REFUSED: return "E_DIAL_REFUSED";
  case AUTONAT_E_BAD_REQUEST: return "E_BAD_REQUEST";
  case AUTONAT_E_INTERNAL_ERROR: return "E_INTERNAL_ERROR";
  default: return "UNKNOWN";
  }
}

int autonat_encode(const autonat_msg *m, buf *out) {
  if (m->n_addrs > AUTONAT_MAX_ADDRS) return -E2BIG;
  Autonat__Message pb = AUTONAT__MESSAGE__INIT;
  Autonat__Message__Dial dial = AUTONAT__MESSAGE__DIAL__INIT;
  Autonat__Message__PeerInfo peer = AUTONAT__MESSAGE__PEER_INFO__INIT;
  Autonat__Message__DialResponse resp = AUTONAT__MESSAGE__DIAL_RESPONSE__INIT;
  ProtobufCBinaryData a[AUTONAT_MAX_ADDRS];
  pb.has_type = 1;
  pb.type = m->type;
  if (m->has_dial) {
    if (m->has_peer_id) {
      peer.has_id = 1;
      peer.id = (ProtobufCBinaryData){m->peer.len, (uint8_t *)m->peer.bytes};
    }
    for (size_t i = 0; i < m->n_addrs; i++) a[i] = (ProtobufCBinaryData){m->addrs[i].len, (uint8_t *)m->addrs[i].bytes};
    peer.n_addrs = m->n_addrs;
    peer.addrs = a;
    dial.peer = &peer;
    pb.dial = &dial;
  }
  char text[AUTONAT_MAX_TEXT];
  if (m->has_response) {
    resp.has_status = 1;
    resp.status = m->status;
    snprintf(text, sizeof text, "%s", m->status_text);
    if (text[0]) resp.statustext = text;
    if (m->has_addr) {
      resp.has_addr = 1;
      resp.addr = (ProtobufCBinaryData){m->addr.len, (uint8_t *)m->addr.bytes};
    }
    pb.dialresponse = &resp;
  }
  return pbframe_pack(&pb.base, AUTONAT_MAX_MSG, out);
}

int autonat_decode(const uint8_t *p, size_t n, autonat_msg *out) {
  memset(out, 0, sizeof *out);
  if (n > AUTONAT_MAX_MSG) return -E2BIG;
  Autonat__Message *pb = autonat__message__unpack(NULL, n, p);
  if (!pb) return -EINVAL;
  int rc = pb->has_type ? 0 : -EINVAL;
  if (rc == 0) out->type = pb->type;
  if (rc == 0 && pb->dial) {
    out->has_dial = true;
    const Autonat__Message__PeerInfo *pi = pb->dial->peer;
    if (pi) {
      if (pi->has_id && peerid_from_bytes(pi->id.data, pi->id.len, &out->peer) == 0) out->has_peer_id = true;
      if (pi->n_addrs > AUTONAT_MAX_ADDRS) rc = -E2BIG;
      for (size_t i = 0; rc == 0 && i < pi->n_addrs; i++) {
        if (multiaddr_from_bytes(pi->addrs[i].data, pi->addrs[i].len, &out->addrs[out->n_addrs]) == 0)
          out->n_addrs++;
        else
          out->n_skipped++;
      }
    }
  }
  if (rc == 0 && pb->dialresponse) {
    const Autonat__Message__DialResponse *r = pb->dialresponse;
    out->has_response = true;
    out->status = r->has_status ? r->status : AUTONAT_E_INTERNAL_ERROR;
    if (r->statustext) {
      size_t k = 0;
      for (const char *s = r->statustext; *s && k + 1 < sizeof out->status_text; s++)
        out->status_text[k++] = (*s >= 0x20 && *s < 0x7f) ? *s : '?';
      out->status_text[k] = 0;
    }
    if (r->has_addr && multiaddr_from_bytes(r->addr.data, r->addr.len, &out->addr) == 0) out->has_addr = true;
  }
  autonat__message__free_unpacked(pb, NULL);
  return rc;
}

int autonat_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len, size_t *consumed) {
  return pbframe_parse(in, n, AUTONAT_MAX_MSG, msg, msg_len, consumed);
}

/* ---------------------------------------------------------------- server: what to dial */

/* The first component (ip4/ip6 and its value) and the tcp port of ma; false for other shapes
 * (anything but /ip4|ip6/…/tcp/…[/p2p/…]). */
static bool ip_tcp(const multiaddr *ma, multiaddr_component *ip, uint16_t *port) {
  size_t off = 0;
  multiaddr_component tcp, rest;
  if (multiaddr_next(ma, &off, ip) != 1 || (ip->code != MA_IP4 && ip->code != MA_IP6)) return false;
  if (multiaddr_next(ma, &off, &tcp) != 1 || tcp.code != MA_TCP || tcp.value_len != 2) return false;
  int r = multiaddr_next(ma, &off, &rest);
  if (r == 1 && (rest.code != MA_P2P || multiaddr_next(ma, &off, &rest) != 0)) return false;
  if (r < 0) return false;
  *port = (uint16_t)(tcp.value[0] << 8 | tcp.value[1]);
  return true;
}

static bool same_ip(const multiaddr_component *a, const multiaddr_component *b) {
  return a->code == b->code && a->value_len == b->value_len && memcmp(a->value, b->value, a->value_len) == 0;
}

bool autonat_addr_is_private(const multiaddr *ma) {
  size_t off = 0;
  multiaddr_component ip;
  if (multiaddr_next(ma, &off, &ip) != 1) return true;
  const uint8_t *v = ip.value;
  if (ip.code == MA_IP4 && ip.value_len == 4) {
    return v[0] == 0 || v[0] == 10 || v[0] == 127 || (v[0] == 100 && (v[1] & 0xc0) == 64) ||
           (v[0] == 169 && v[1] == 254) || (v[0] == 172 && (v[1] & 0xf0) == 16) || (v[0] == 192 && v[1] == 168) ||
           (v[0] == 192 && v[1] == 0 && (v[2] == 0 || v[2] == 2)) || (v[0] == 198 && (v[1] & 0xfe) == 18) ||
           (v[0] == 198 && v[1] == 51 && v[2] == 100) || (v[0] == 203 && v[1] == 0 && v[2] == 113) || v[0] >= 224;
  }
  if (ip.code == MA_IP6 && ip.value_len == 16) {
    static const uint8_t zero[15] = {0};
    if (memcmp(v, zero, 15) == 0) return true;                      /* :: and ::1 */
    if ((v[0] & 0xfe) == 0xfc || (v[0] == 0xfe && (v[1] & 0xc0) == 0x80) || v[0] == 0xff) return true;
    if (v[0] == 0x20 && v[1] == 0x01 && v[2] == 0x0d && v[3] == 0xb8) return true; /* documentation */
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(v, mapped, 12) == 0) return true;
    return false;
  }
  return true; /* dns and the rest: not dialed back */
}

size_t autonat_dialable(const multiaddr *observed, const multiaddr *req, size_t n_req, const multiaddr *ours,
                        size_t n_ours, bool allow_private, multiaddr *out) {
  multiaddr_component oip;
  uint16_t oport;
  if (!ip_tcp(observed, &oip, &oport)) return 0;
  size_t n = 0;
  for (size_t i = 0; i < n_req && n < AUTONAT_MAX_DIALS; i++) {
    multiaddr_component ip, mine;
    uint16_t port, p2;
    if (!ip_tcp(&req[i], &ip, &port) || port == 0 || !same_ip(&ip, &oip)) continue;
    if (!allow_private && autonat_addr_is_private(&req[i])) continue;
    bool own = false;
    for (size_t k = 0; k < n_ours && !own; k++) own = ip_tcp(&ours[k], &mine, &p2) && same_ip(&mine, &ip) && p2 == port;
    if (own) continue;
    multiaddr bare;
    multiaddr_strip_p2p(&req[i], &bare);
    bool dup = false;
    for (size_t k = 0; k < n && !dup; k++) dup = multiaddr_equal(&out[k], &bare);
    if (!dup) out[n++] = bare;
  }
  return n;
}

/* ---------------------------------------------------------------- client: the tally */

void autonat_tally_init(autonat_tally *t, unsigned confidence) {
  memset(t, 0, sizeof *t);
  t->confidence = confidence ? confidence : 1;
}

void autonat_tally_reset(autonat_tally *t) { t->n = 0; }

int autonat_tally_add(autonat_tally *t, const peerid *server, uint32_t status) {
  if (status != AUTONAT_OK && status != AUTONAT_E_DIAL_ERROR) return t->reachability;
  bool ok = status == AUTONAT_OK;
  size_t i;
  for (i = 0; i < t->n; i++)
    if (peerid_equal(&t->votes[i].server, server)) break;
  if (i < t->n) { /* a server's latest vote replaces its earlier one (and becomes the newest) */
    memmove(&t->votes[i], &t->votes[i + 1], (t->n - i - 1) * sizeof t->votes[0]);
    t->n--;
  } else if (t->n == AUTONAT_TALLY_MAX) {
    memmove(&t->votes[0], &t->votes[1], (t->n - 1) * sizeof t->votes[0]);
    t->n--;
  }
  t->votes[t->n].server = *server;
  t->votes[t->n].ok = ok;
  t->n++;
  size_t oks = 0, fails = 0;
  for (i = 0; i < t->n; i++) {
    if (t->votes[i].ok) oks++;
    else fails++;
  }
  if (oks >= t->confidence && oks > fails) t->reachability = 1;
  else if (fails >= t->confidence && fails > oks) t->reachability = 2;
  return t->reachability;
}
