/* identify.c — Identify message encode/decode and varint framing (libp2p identify spec).
 * See identify.h. */
#include "p2p/proto/identify.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "identify.pb-c.h"
#include "p2p/proto/pbframe.h"

int identify_encode(const identify_msg *m, buf *out) {
  if (m->n_listen_addrs > IDENTIFY_MAX_ADDRS || m->n_protocols > IDENTIFY_MAX_PROTOCOLS) return -E2BIG;
  Pb__Identify pb = PB__IDENTIFY__INIT;
  ProtobufCBinaryData addrs[IDENTIFY_MAX_ADDRS];
  if (m->protocol_version) pb.protocolversion = m->protocol_version;
  if (m->agent_version) pb.agentversion = m->agent_version;
  if (m->public_key) {
    pb.has_publickey = 1;
    pb.publickey.data = m->public_key;
    pb.publickey.len = m->public_key_len;
  }
  for (size_t i = 0; i < m->n_listen_addrs; i++) {
    addrs[i].data = (uint8_t *)m->listen_addrs[i].bytes;
    addrs[i].len = m->listen_addrs[i].len;
  }
  pb.n_listenaddrs = m->n_listen_addrs;
  pb.listenaddrs = addrs;
  if (m->has_observed_addr) {
    pb.has_observedaddr = 1;
    pb.observedaddr.data = (uint8_t *)m->observed_addr.bytes;
    pb.observedaddr.len = m->observed_addr.len;
  }
  pb.n_protocols = m->n_protocols;
  pb.protocols = m->protocols;
  if (m->signed_peer_record) {
    pb.has_signedpeerrecord = 1;
    pb.signedpeerrecord.data = m->signed_peer_record;
    pb.signedpeerrecord.len = m->signed_peer_record_len;
  }
  return pbframe_pack(&pb.base, IDENTIFY_MAX_MSG, out);
}

static int dup_string(const char *s, char **out) {
  size_t n = strnlen(s, IDENTIFY_MAX_STRING + 1);
  if (n > IDENTIFY_MAX_STRING) return -EINVAL;
  *out = malloc(n + 1);
  if (!*out) return -ENOMEM;
  memcpy(*out, s, n);
  (*out)[n] = 0;
  return 0;
}

static int dup_bytes(const ProtobufCBinaryData *b, uint8_t **out, size_t *len) {
  *out = malloc(b->len ? b->len : 1);
  if (!*out) return -ENOMEM;
  if (b->len) memcpy(*out, b->data, b->len);
  *len = b->len;
  return 0;
}

int identify_decode(const uint8_t *p, size_t n, identify_msg *out) {
  memset(out, 0, sizeof *out);
  if (n > IDENTIFY_MAX_MSG) return -E2BIG;
  Pb__Identify *pb = pb__identify__unpack(NULL, n, p);
  if (!pb) return -EINVAL;
  int rc = 0;
  if (pb->n_listenaddrs > IDENTIFY_MAX_ADDRS || pb->n_protocols > IDENTIFY_MAX_PROTOCOLS) {
    rc = -E2BIG;
    goto out;
  }
  if (pb->protocolversion && (rc = dup_string(pb->protocolversion, &out->protocol_version))) goto out;
  if (pb->agentversion && (rc = dup_string(pb->agentversion, &out->agent_version))) goto out;
  if (pb->has_publickey && (rc = dup_bytes(&pb->publickey, &out->public_key, &out->public_key_len))) goto out;
  if (pb->has_signedpeerrecord &&
      (rc = dup_bytes(&pb->signedpeerrecord, &out->signed_peer_record, &out->signed_peer_record_len)))
    goto out;
  if (pb->n_listenaddrs) {
    out->listen_addrs = calloc(pb->n_listenaddrs, sizeof *out->listen_addrs);
    if (!out->listen_addrs) {
      rc = -ENOMEM;
      goto out;
    }
    for (size_t i = 0; i < pb->n_listenaddrs; i++) {
      /* An address we cannot parse (unknown protocol) is skipped, not fatal. */
      if (multiaddr_from_bytes(pb->listenaddrs[i].data, pb->listenaddrs[i].len,
                               &out->listen_addrs[out->n_listen_addrs]) == 0)
        out->n_listen_addrs++;
      else
        out->n_listen_addrs_skipped++;
    }
  }
  if (pb->has_observedaddr &&
      multiaddr_from_bytes(pb->observedaddr.data, pb->observedaddr.len, &out->observed_addr) == 0)
    out->has_observed_addr = true;
  if (pb->n_protocols) {
    out->protocols = calloc(pb->n_protocols, sizeof *out->protocols);
    if (!out->protocols) {
      rc = -ENOMEM;
      goto out;
    }
    for (size_t i = 0; i < pb->n_protocols; i++) {
      if ((rc = dup_string(pb->protocols[i] ? pb->protocols[i] : "", &out->protocols[i]))) goto out;
      out->n_protocols++;
    }
  }
out:
  pb__identify__free_unpacked(pb, NULL);
  if (rc) identify_msg_clear(out);
  return rc;
}

void identify_msg_clear(identify_msg *m) {
  free(m->protocol_version);
  free(m->agent_version);
  free(m->public_key);
  free(m->listen_addrs);
  for (size_t i = 0; i < m->n_protocols; i++) free(m->protocols[i]);
  free(m->protocols);
  free(m->signed_peer_record);
  memset(m, 0, sizeof *m);
}

int identify_frame_parse(const uint8_t *in, size_t n, size_t max_len, const uint8_t **msg, size_t *msg_len,
                         size_t *consumed) {
  return pbframe_parse(in, n, max_len, msg, msg_len, consumed);
}
