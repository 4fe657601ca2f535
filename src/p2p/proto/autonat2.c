/* autonat2.c — AutoNAT v2 codec, the server's choice and both sides of a dial-request stream
 * (see autonat2.h). */
#include "p2p/proto/autonat2.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "autonat2.pb-c.h"
#include "p2p/proto/autonat.h"
#include "p2p/proto/pbframe.h"

const char *autonat2_response_status_name(uint32_t s) {
  switch (s) {
  case AUTONAT2_RS_E_INTERNAL_ERROR: return "E_INTERNAL_ERROR";
  case AUTONAT2_RS_E_REQUEST_REJECTED: return "E_REQUEST_REJECTED";
  case AUTONAT2_RS_E_DIAL_REFUSED: return "E_DIAL_REFUSED";
  case AUTONAT2_RS_OK: return "OK";
  default: return "UNKNOWN";
  }
}

const char *autonat2_dial_status_name(uint32_t s) {
  switch (s) {
  case AUTONAT2_DS_UNUSED: return "UNUSED";
  case AUTONAT2_DS_E_DIAL_ERROR: return "E_DIAL_ERROR";
  case AUTONAT2_DS_E_DIAL_BACK_ERROR: return "E_DIAL_BACK_ERROR";
  case AUTONAT2_DS_OK: return "OK";
  default: return "UNKNOWN";
  }
}

/* ---------------------------------------------------------------- codec */

static const uint8_t zeros[AUTONAT2_DATA_CHUNK];

int autonat2_encode(const autonat2_msg *m, buf *out) {
  Autonat2__Message pb = AUTONAT2__MESSAGE__INIT;
  Autonat2__DialRequest rq = AUTONAT2__DIAL_REQUEST__INIT;
  Autonat2__DialResponse rs = AUTONAT2__DIAL_RESPONSE__INIT;
  Autonat2__DialDataRequest dq = AUTONAT2__DIAL_DATA_REQUEST__INIT;
  Autonat2__DialDataResponse dr = AUTONAT2__DIAL_DATA_RESPONSE__INIT;
  ProtobufCBinaryData a[AUTONAT2_MAX_ADDRS];
  switch (m->kind) {
  case AUTONAT2_DIAL_REQUEST:
    if (m->n_addrs > AUTONAT2_MAX_ADDRS) return -E2BIG;
    for (size_t i = 0; i < m->n_addrs; i++) a[i] = (ProtobufCBinaryData){m->addrs[i].len, (uint8_t *)m->addrs[i].bytes};
    rq.n_addrs = m->n_addrs;
    rq.addrs = a;
    rq.has_nonce = 1;
    rq.nonce = m->nonce;
    pb.msg_case = AUTONAT2__MESSAGE__MSG_DIAL_REQUEST;
    pb.dialrequest = &rq;
    break;
  case AUTONAT2_DIAL_RESPONSE:
    rs.has_status = 1;
    rs.status = m->status;
    rs.has_addridx = 1;
    rs.addridx = m->addr_idx;
    rs.has_dialstatus = 1;
    rs.dialstatus = m->dial_status;
    pb.msg_case = AUTONAT2__MESSAGE__MSG_DIAL_RESPONSE;
    pb.dialresponse = &rs;
    break;
  case AUTONAT2_DIAL_DATA_REQUEST:
    dq.has_addridx = 1;
    dq.addridx = m->addr_idx;
    dq.has_numbytes = 1;
    dq.numbytes = m->num_bytes;
    pb.msg_case = AUTONAT2__MESSAGE__MSG_DIAL_DATA_REQUEST;
    pb.dialdatarequest = &dq;
    break;
  case AUTONAT2_DIAL_DATA_RESPONSE:
    if (m->data_len > AUTONAT2_DATA_CHUNK) return -EINVAL;
    dr.has_data = 1;
    dr.data = (ProtobufCBinaryData){m->data_len, (uint8_t *)zeros};
    pb.msg_case = AUTONAT2__MESSAGE__MSG_DIAL_DATA_RESPONSE;
    pb.dialdataresponse = &dr;
    break;
  default:
    return -EINVAL;
  }
  return pbframe_pack(&pb.base, AUTONAT2_MAX_MSG, out);
}

int autonat2_decode(const uint8_t *p, size_t n, autonat2_msg *out) {
  memset(out, 0, sizeof *out);
  if (n > AUTONAT2_MAX_MSG) return -E2BIG;
  Autonat2__Message *pb = autonat2__message__unpack(NULL, n, p);
  if (!pb) return -EINVAL;
  int rc = 0;
  switch (pb->msg_case) {
  case AUTONAT2__MESSAGE__MSG_DIAL_REQUEST: {
    const Autonat2__DialRequest *r = pb->dialrequest;
    out->kind = AUTONAT2_DIAL_REQUEST;
    out->nonce = r->has_nonce ? r->nonce : 0;
    for (size_t i = 0; i < r->n_addrs; i++) {
      if (out->n_addrs == AUTONAT2_MAX_ADDRS) {
        out->n_dropped++;
        continue;
      }
      multiaddr *ma = &out->addrs[out->n_addrs++];
      if (multiaddr_from_bytes(r->addrs[i].data, r->addrs[i].len, ma) != 0) {
        memset(ma, 0, sizeof *ma);
        out->n_bad++;
      }
    }
    break;
  }
  case AUTONAT2__MESSAGE__MSG_DIAL_RESPONSE: {
    const Autonat2__DialResponse *r = pb->dialresponse;
    out->kind = AUTONAT2_DIAL_RESPONSE;
    out->status = r->has_status ? r->status : 0;
    out->addr_idx = r->has_addridx ? r->addridx : 0;
    out->dial_status = r->has_dialstatus ? r->dialstatus : 0;
    break;
  }
  case AUTONAT2__MESSAGE__MSG_DIAL_DATA_REQUEST: {
    const Autonat2__DialDataRequest *r = pb->dialdatarequest;
    out->kind = AUTONAT2_DIAL_DATA_REQUEST;
    out->addr_idx = r->has_addridx ? r->addridx : 0;
    out->num_bytes = r->has_numbytes ? r->numbytes : 0;
    break;
  }
  case AUTONAT2__MESSAGE__MSG_DIAL_DATA_RESPONSE:
    out->kind = AUTONAT2_DIAL_DATA_RESPONSE;
    out->data_len = pb->dialdataresponse->has_data ? pb->dialdataresponse->data.len : 0;
    break;
  default:
    rc = -EINVAL;
    break;
  }
  autonat2__message__free_unpacked(pb, NULL);
  return rc;
}

int autonat2_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len, size_t *consumed) {
  return pbframe_parse(in, n, AUTONAT2_MAX_MSG, msg, msg_len, consumed);
}

int autonat2_dialback_encode(uint64_t nonce, buf *out) {
  Autonat2__DialBack pb = AUTONAT2__DIAL_BACK__INIT;
  pb.has_nonce = 1;
  pb.nonce = nonce;
  return pbframe_pack(&pb.base, AUTONAT2_MAX_DIALBACK_MSG, out);
}

int autonat2_dialback_decode(const uint8_t *p, size_t n, uint64_t *nonce) {
  if (n > AUTONAT2_MAX_DIALBACK_MSG) return -E2BIG;
  Autonat2__DialBack *pb = autonat2__dial_back__unpack(NULL, n, p);
  if (!pb) return -EINVAL;
  *nonce = pb->has_nonce ? pb->nonce : 0;
  autonat2__dial_back__free_unpacked(pb, NULL);
  return 0;
}

int autonat2_dialback_response_encode(uint32_t status, buf *out) {
  Autonat2__DialBackResponse pb = AUTONAT2__DIAL_BACK_RESPONSE__INIT;
  pb.has_status = 1;
  pb.status = status;
  return pbframe_pack(&pb.base, AUTONAT2_MAX_DIALBACK_MSG, out);
}

int autonat2_dialback_response_decode(const uint8_t *p, size_t n, uint32_t *status) {
  if (n > AUTONAT2_MAX_DIALBACK_MSG) return -E2BIG;
  Autonat2__DialBackResponse *pb = autonat2__dial_back_response__unpack(NULL, n, p);
  if (!pb) return -EINVAL;
  *status = pb->has_status ? pb->status : 0; /* proto3: an absent status is OK (0) */
  autonat2__dial_back_response__free_unpacked(pb, NULL);
  return 0;
}

int autonat2_dialback_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len,
                                  size_t *consumed) {
  return pbframe_parse(in, n, AUTONAT2_MAX_DIALBACK_MSG, msg, msg_len, consumed);
}

/* ---------------------------------------------------------------- server: the address */

/* The ip component and tcp port of /ip4|ip6/…/tcp/…[/p2p/…]; false for other shapes. */
static bool ip_tcp(const multiaddr *ma, multiaddr_component *ip, uint16_t *port) {
  size_t off = 0;
  multiaddr_component tcp, rest;
  if (!ma->len) return false;
  if (multiaddr_next(ma, &off, ip) != 1 || (ip->code != MA_IP4 && ip->code != MA_IP6)) return false;
  if (multiaddr_next(ma, &off, &tcp) != 1 || tcp.code != MA_TCP || tcp.value_len != 2) return false;
  int r = multiaddr_next(ma, &off, &rest);
  if (r < 0 || (r == 1 && (rest.code != MA_P2P || multiaddr_next(ma, &off, &rest) != 0))) return false;
  *port = (uint16_t)(tcp.value[0] << 8 | tcp.value[1]);
  return true;
}

int autonat2_select(const multiaddr *observed, const autonat2_msg *req, const multiaddr *ours, size_t n_ours,
                    bool allow_private, bool allow_other_ip, bool *other_ip) {
  multiaddr_component oip;
  uint16_t oport;
  *other_ip = false;
  if (req->kind != AUTONAT2_DIAL_REQUEST || !ip_tcp(observed, &oip, &oport)) return -1;
  for (size_t i = 0; i < req->n_addrs && i < AUTONAT2_MAX_ADDRS; i++) {
    multiaddr_component ip, mine;
    uint16_t port, p2;
    if (!ip_tcp(&req->addrs[i], &ip, &port) || port == 0) continue;
    if (!allow_private && autonat_addr_is_private(&req->addrs[i])) continue;
    bool own = false;
    for (size_t k = 0; k < n_ours && !own; k++)
      own = ip_tcp(&ours[k], &mine, &p2) && p2 == port && mine.code == ip.code && mine.value_len == ip.value_len &&
            memcmp(mine.value, ip.value, ip.value_len) == 0;
    if (own) continue;
    bool same = ip.code == oip.code && ip.value_len == oip.value_len && memcmp(ip.value, oip.value, ip.value_len) == 0;
    if (!same && !allow_other_ip) continue;
    *other_ip = !same;
    return (int)i;
  }
  return -1;
}

/* Whether a first component `l` of a socket's address can be what `t` names. */
static bool first_matches(uint32_t l, uint32_t t) {
  switch (t) {
  case MA_DNS:
  case MA_DNSADDR: return l == MA_IP4 || l == MA_IP6;
  case MA_DNS4: return l == MA_IP4;
  case MA_DNS6: return l == MA_IP6;
  default: return l == t;
  }
}

bool autonat2_dialback_addr_matches(const multiaddr *local, const multiaddr *tested) {
  multiaddr bare;
  multiaddr_strip_p2p(tested, &bare);
  size_t lo = 0, to = 0;
  multiaddr_component lc, tc;
  for (int i = 0;; i++) {
    int lr = multiaddr_next(local, &lo, &lc), tr = multiaddr_next(&bare, &to, &tc);
    if (lr < 0 || tr < 0) return false;
    if (lr == 0 || tr == 0) return lr == tr && i > 0; /* the same length, not empty */
    if (i == 0 ? !first_matches(lc.code, tc.code) : lc.code != tc.code) return false;
  }
}

int autonat2_result(uint32_t status, uint32_t dial_status) {
  if (status != AUTONAT2_RS_OK) return 0;
  if (dial_status == AUTONAT2_DS_OK) return 1;
  if (dial_status == AUTONAT2_DS_E_DIAL_ERROR) return 2;
  return 0;
}

/* ---------------------------------------------------------------- server side */

void autonat2_server_init(autonat2_server *s) {
  memset(s, 0, sizeof *s);
  s->idx = -1;
  s->state = A2S_ST_WAIT_REQUEST;
}

static autonat2_server_ev server_answer(autonat2_server *s, uint32_t status, uint32_t dial_status, const char *why,
                                        buf *out) {
  autonat2_msg m = {.kind = AUTONAT2_DIAL_RESPONSE, .status = status, .dial_status = dial_status};
  m.addr_idx = s->idx >= 0 ? (uint32_t)s->idx : 0;
  s->state = A2S_ST_DONE;
  s->status = status;
  s->why = why;
  if (autonat2_encode(&m, out) != 0) {
    s->why = "cannot encode the response";
    return A2S_ERROR;
  }
  return A2S_DONE;
}

static autonat2_server_ev server_error(autonat2_server *s, const char *why) {
  s->state = A2S_ST_DONE;
  s->why = why;
  return A2S_ERROR;
}

autonat2_server_ev autonat2_server_feed(autonat2_server *s, const autonat2_server_policy *pol, const uint8_t *in,
                                        size_t n, size_t *used, buf *out) {
  *used = 0;
  autonat2_msg *m = NULL;
  autonat2_server_ev ev = A2S_MORE;
  while (ev == A2S_MORE && *used < n) {
    if (s->state == A2S_ST_DONE) break;
    if (s->state == A2S_ST_DIALING) {
      ev = server_error(s, "data while dialing back");
      break;
    }
    const uint8_t *body;
    size_t bl, c;
    int rc = autonat2_frame_parse(in + *used, n - *used, &body, &bl, &c);
    if (rc == -EAGAIN) break;
    if (rc) {
      ev = server_error(s, rc == -EMSGSIZE ? "message too large" : "bad frame");
      break;
    }
    *used += c;
    if (!m && !(m = malloc(sizeof *m))) {
      ev = server_answer(s, AUTONAT2_RS_E_INTERNAL_ERROR, AUTONAT2_DS_UNUSED, "out of memory", out);
      break;
    }
    if (autonat2_decode(body, bl, m) != 0) {
      ev = server_error(s, "malformed message");
      break;
    }
    if (s->state == A2S_ST_WAIT_REQUEST) {
      if (m->kind != AUTONAT2_DIAL_REQUEST) {
        ev = server_error(s, "expected a DialRequest");
        break;
      }
      s->nonce = m->nonce;
      bool other = false;
      s->idx = autonat2_select(pol->observed, m, pol->ours, pol->n_ours, pol->allow_private, pol->allow_other_ip,
                               &other);
      if (s->idx < 0) {
        ev = server_answer(s, AUTONAT2_RS_E_DIAL_REFUSED, AUTONAT2_DS_UNUSED, "no address we may dial", out);
        break;
      }
      if (pol->admit && !pol->admit(pol->admit_ud, other)) {
        ev = server_answer(s, AUTONAT2_RS_E_REQUEST_REJECTED, AUTONAT2_DS_UNUSED, "rate limited", out);
        break;
      }
      s->target = m->addrs[s->idx];
      s->other_ip = other;
      if (!other) {
        s->state = A2S_ST_DIALING;
        ev = A2S_DIAL;
        break;
      }
      uint64_t need = pol->data_bytes;
      if (need < AUTONAT2_DATA_MIN) need = AUTONAT2_DATA_MIN;
      if (need > AUTONAT2_DATA_MAX) need = AUTONAT2_DATA_MAX;
      autonat2_msg dq = {.kind = AUTONAT2_DIAL_DATA_REQUEST, .addr_idx = (uint32_t)s->idx, .num_bytes = need};
      if (autonat2_encode(&dq, out) != 0) {
        ev = server_answer(s, AUTONAT2_RS_E_INTERNAL_ERROR, AUTONAT2_DS_UNUSED, "cannot encode", out);
        break;
      }
      s->data_need = need;
      s->state = A2S_ST_WAIT_DATA;
      continue;
    }
    assert(s->state == A2S_ST_WAIT_DATA);
    if (m->kind != AUTONAT2_DIAL_DATA_RESPONSE) {
      ev = server_error(s, "expected a DialDataResponse");
      break;
    }
    if (m->data_len > AUTONAT2_DATA_CHUNK) {
      ev = server_error(s, "DialDataResponse over 4096 bytes");
      break;
    }
    s->data_got += m->data_len;
    if (s->data_got >= s->data_need) {
      s->state = A2S_ST_DIALING;
      ev = A2S_DIAL;
    }
  }
  free(m);
  return ev;
}

autonat2_server_ev autonat2_server_dialed(autonat2_server *s, uint32_t dial_status, buf *out) {
  if (s->state != A2S_ST_DIALING) return s->state == A2S_ST_DONE ? A2S_DONE : A2S_ERROR;
  return server_answer(s, AUTONAT2_RS_OK, dial_status,
                       dial_status == AUTONAT2_DS_OK ? "dialed back" : autonat2_dial_status_name(dial_status), out);
}

/* ---------------------------------------------------------------- client side */

int autonat2_client_start(autonat2_client *c, const multiaddr *addrs, size_t n, uint64_t nonce, uint64_t max_data,
                          buf *out) {
  memset(c, 0, sizeof *c);
  if (n == 0 || n > AUTONAT2_MAX_ADDRS) return -EINVAL;
  c->n_addrs = n;
  c->nonce = nonce;
  c->max_data = max_data ? max_data : AUTONAT2_CLIENT_MAX_DATA;
  autonat2_msg *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->kind = AUTONAT2_DIAL_REQUEST;
  m->nonce = nonce;
  m->n_addrs = n;
  memcpy(m->addrs, addrs, n * sizeof *addrs);
  int rc = autonat2_encode(m, out);
  free(m);
  return rc;
}

autonat2_client_ev autonat2_client_feed(autonat2_client *c, const uint8_t *in, size_t n, size_t *used, buf *out) {
  *used = 0;
  while (*used < n) {
    const uint8_t *body;
    size_t bl, k;
    int rc = autonat2_frame_parse(in + *used, n - *used, &body, &bl, &k);
    if (rc == -EAGAIN) return A2C_MORE;
    if (rc) {
      c->why = "bad frame";
      return A2C_ERROR;
    }
    *used += k;
    autonat2_msg m;
    /* the small kinds only: a DialRequest (the big one) is not for a client */
    Autonat2__Message *pb = autonat2__message__unpack(NULL, bl, body);
    if (!pb) {
      c->why = "malformed message";
      return A2C_ERROR;
    }
    bool request = pb->msg_case == AUTONAT2__MESSAGE__MSG_DIAL_REQUEST;
    autonat2__message__free_unpacked(pb, NULL);
    if (request || autonat2_decode(body, bl, &m) != 0) {
      c->why = request ? "a DialRequest sent to the client" : "malformed message";
      return A2C_ERROR;
    }
    if (m.kind == AUTONAT2_DIAL_DATA_REQUEST) {
      if (c->paid) {
        c->why = "a second DialDataRequest";
        return A2C_ERROR;
      }
      if (m.addr_idx >= c->n_addrs || m.num_bytes > c->max_data) {
        c->why = m.addr_idx >= c->n_addrs ? "DialDataRequest for an unknown address" : "dial data cost too high";
        return A2C_ERROR;
      }
      c->paid = true;
      for (uint64_t sent = 0; sent < m.num_bytes; sent += AUTONAT2_DATA_CHUNK) {
        autonat2_msg d = {.kind = AUTONAT2_DIAL_DATA_RESPONSE, .data_len = AUTONAT2_DATA_CHUNK};
        if (autonat2_encode(&d, out) != 0) {
          c->why = "cannot buffer the dial data";
          return A2C_ERROR;
        }
        c->data_paid += AUTONAT2_DATA_CHUNK;
      }
      continue;
    }
    if (m.kind == AUTONAT2_DIAL_RESPONSE) {
      c->status = m.status;
      c->addr_idx = m.addr_idx;
      c->dial_status = m.dial_status;
      if (m.status == AUTONAT2_RS_OK && m.addr_idx >= c->n_addrs) {
        c->why = "DialResponse for an unknown address";
        return A2C_ERROR;
      }
      return A2C_RESULT;
    }
    c->why = "unexpected message";
    return A2C_ERROR;
  }
  return A2C_MORE;
}
