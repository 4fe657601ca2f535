/* envelope.c — signed envelopes and peer records (RFC 0002, RFC 0003). See envelope.h. */
#include "p2p/core/envelope.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.pb-c.h"
#include "p2p/core/varint.h"

const uint8_t PEER_RECORD_PAYLOAD_TYPE[2] = {0x03, 0x01};

/* The bytes a signature covers (RFC 0002 "Signature Production / Verification"); malloc'd. */
static int signed_bytes(const char *domain, size_t dlen, const uint8_t *pt, size_t ptlen, const uint8_t *pl,
                        size_t pllen, uint8_t **out, size_t *outlen) {
  size_t total = 3 * VARINT_MAX_BYTES + dlen + ptlen + pllen;
  uint8_t *b = malloc(total);
  if (!b) return -ENOMEM;
  size_t o = 0;
  o += varint_encode(dlen, b + o);
  memcpy(b + o, domain, dlen);
  o += dlen;
  o += varint_encode(ptlen, b + o);
  if (ptlen) memcpy(b + o, pt, ptlen);
  o += ptlen;
  o += varint_encode(pllen, b + o);
  if (pllen) memcpy(b + o, pl, pllen);
  o += pllen;
  *out = b;
  *outlen = o;
  return 0;
}

static int domain_len(const char *domain, size_t *len) {
  if (!domain) return -EINVAL;
  size_t n = strnlen(domain, ENVELOPE_MAX_DOMAIN + 1);
  if (n == 0 || n > ENVELOPE_MAX_DOMAIN) return -EINVAL;
  *len = n;
  return 0;
}

int envelope_seal(const keys_private *k, const char *domain, const uint8_t *payload_type, size_t payload_type_len,
                  const uint8_t *payload, size_t payload_len, buf *out) {
  size_t dlen;
  int rc = domain_len(domain, &dlen);
  if (rc) return rc;
  if (payload_type_len > ENVELOPE_MAX_BYTES || payload_len > ENVELOPE_MAX_BYTES) return -E2BIG;
  if (k->type != KEYS_TYPE_ED25519) return -ENOTSUP;
  uint8_t *msg;
  size_t msglen;
  rc = signed_bytes(domain, dlen, payload_type, payload_type_len, payload, payload_len, &msg, &msglen);
  if (rc) return rc;
  uint8_t sig[KEYS_ED25519_SIG_LEN];
  rc = keys_private_sign(k, msg, msglen, sig);
  free(msg);
  if (rc) return rc;
  keys_public pub;
  keys_private_public(k, &pub);
  uint8_t pk[KEYS_PUBLIC_PB_MAX];
  size_t pklen;
  rc = keys_public_encode(&pub, pk, sizeof pk, &pklen);
  if (rc) return rc;
  Record__Envelope pb = RECORD__ENVELOPE__INIT;
  pb.has_public_key = pb.has_payload_type = pb.has_payload = pb.has_signature = 1;
  pb.public_key = (ProtobufCBinaryData){pklen, pk};
  pb.payload_type = (ProtobufCBinaryData){payload_type_len, (uint8_t *)payload_type};
  pb.payload = (ProtobufCBinaryData){payload_len, (uint8_t *)payload};
  pb.signature = (ProtobufCBinaryData){sizeof sig, sig};
  size_t sz = record__envelope__get_packed_size(&pb);
  if (sz > ENVELOPE_MAX_BYTES) return -E2BIG;
  uint8_t *p;
  rc = buf_reserve(out, sz, &p);
  if (rc) return rc;
  record__envelope__pack(&pb, p);
  buf_commit(out, sz);
  return 0;
}

static int dup_bin(const ProtobufCBinaryData *b, uint8_t **out, size_t *len) {
  *out = malloc(b->len ? b->len : 1);
  if (!*out) return -ENOMEM;
  if (b->len) memcpy(*out, b->data, b->len);
  *len = b->len;
  return 0;
}

int envelope_open(const uint8_t *p, size_t n, const char *domain, const uint8_t *want_type, size_t want_type_len,
                  envelope *out) {
  memset(out, 0, sizeof *out);
  size_t dlen;
  int rc = domain_len(domain, &dlen);
  if (rc) return rc;
  if (n > ENVELOPE_MAX_BYTES) return -E2BIG;
  Record__Envelope *pb = record__envelope__unpack(NULL, n, p);
  if (!pb) return -EINVAL;
  rc = -EINVAL;
  /* Every field must be there (payload_type and payload may be empty: proto3 drops them). */
  if (!pb->has_public_key || !pb->has_signature || !pb->signature.len) goto out;
  if (keys_public_decode(pb->public_key.data, pb->public_key.len, &out->signer) != 0) goto out;
  if (peerid_from_public(&out->signer, &out->signer_id) != 0) goto out;
  if (want_type && (pb->payload_type.len != want_type_len ||
                    (want_type_len && memcmp(pb->payload_type.data, want_type, want_type_len) != 0))) {
    rc = -EPROTOTYPE;
    goto out;
  }
  uint8_t *msg;
  size_t msglen;
  rc = signed_bytes(domain, dlen, pb->payload_type.data, pb->payload_type.len, pb->payload.data, pb->payload.len, &msg,
                    &msglen);
  if (rc) goto out;
  rc = keys_public_verify(&out->signer, msg, msglen, pb->signature.data, pb->signature.len);
  free(msg);
  if (rc) goto out;
  if ((rc = dup_bin(&pb->payload_type, &out->payload_type, &out->payload_type_len)) != 0) goto out;
  rc = dup_bin(&pb->payload, &out->payload, &out->payload_len);
out:
  record__envelope__free_unpacked(pb, NULL);
  if (rc) envelope_clear(out);
  return rc;
}

void envelope_clear(envelope *e) {
  free(e->payload_type);
  free(e->payload);
  memset(e, 0, sizeof *e);
}

/* ---------------------------------------------------------------- peer records */

int peer_record_encode(const peer_record *r, buf *out) {
  if (r->n_addrs > PEER_RECORD_MAX_ADDRS) return -E2BIG;
  Record__PeerRecord pb = RECORD__PEER_RECORD__INIT;
  Record__PeerRecord__AddressInfo infos[PEER_RECORD_MAX_ADDRS];
  Record__PeerRecord__AddressInfo *ptrs[PEER_RECORD_MAX_ADDRS];
  pb.has_peer_id = 1;
  pb.peer_id = (ProtobufCBinaryData){r->id.len, (uint8_t *)r->id.bytes};
  pb.has_seq = 1;
  pb.seq = r->seq;
  for (size_t i = 0; i < r->n_addrs; i++) {
    record__peer_record__address_info__init(&infos[i]);
    infos[i].has_multiaddr = 1;
    infos[i].multiaddr = (ProtobufCBinaryData){r->addrs[i].len, (uint8_t *)r->addrs[i].bytes};
    ptrs[i] = &infos[i];
  }
  pb.n_addresses = r->n_addrs;
  pb.addresses = r->n_addrs ? ptrs : NULL;
  size_t sz = record__peer_record__get_packed_size(&pb);
  if (sz > ENVELOPE_MAX_BYTES) return -E2BIG;
  uint8_t *p;
  int rc = buf_reserve(out, sz ? sz : 1, &p);
  if (rc) return rc;
  record__peer_record__pack(&pb, p);
  buf_commit(out, sz);
  return 0;
}

int peer_record_decode(const uint8_t *p, size_t n, peer_record *out) {
  memset(out, 0, sizeof *out);
  if (n > ENVELOPE_MAX_BYTES) return -E2BIG;
  Record__PeerRecord *pb = record__peer_record__unpack(NULL, n, p);
  if (!pb) return -EINVAL;
  int rc = -EINVAL;
  if (!pb->has_peer_id || peerid_from_bytes(pb->peer_id.data, pb->peer_id.len, &out->id) != 0) goto out;
  out->seq = pb->seq;
  if (pb->n_addresses > PEER_RECORD_MAX_ADDRS) {
    rc = -E2BIG;
    goto out;
  }
  rc = 0;
  if (pb->n_addresses) {
    out->addrs = calloc(pb->n_addresses, sizeof *out->addrs);
    if (!out->addrs) {
      rc = -ENOMEM;
      goto out;
    }
    for (size_t i = 0; i < pb->n_addresses; i++) {
      const Record__PeerRecord__AddressInfo *ai = pb->addresses[i];
      if (ai && ai->has_multiaddr &&
          multiaddr_from_bytes(ai->multiaddr.data, ai->multiaddr.len, &out->addrs[out->n_addrs]) == 0)
        out->n_addrs++;
      else
        out->n_skipped++;
    }
  }
out:
  record__peer_record__free_unpacked(pb, NULL);
  if (rc) peer_record_clear(out);
  return rc;
}

int peer_record_seal(const keys_private *k, uint64_t seq, const multiaddr *addrs, size_t n_addrs, buf *out) {
  peer_record r = {.seq = seq, .addrs = (multiaddr *)addrs, .n_addrs = n_addrs};
  keys_public pub;
  keys_private_public(k, &pub);
  int rc = peerid_from_public(&pub, &r.id);
  if (rc) return rc;
  buf payload;
  buf_init(&payload, ENVELOPE_MAX_BYTES);
  rc = peer_record_encode(&r, &payload);
  if (rc == 0)
    rc = envelope_seal(k, PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, sizeof PEER_RECORD_PAYLOAD_TYPE,
                       buf_ptr(&payload), buf_len(&payload), out);
  buf_free(&payload);
  return rc;
}

int peer_record_open(const uint8_t *p, size_t n, peer_record *out) {
  memset(out, 0, sizeof *out);
  envelope e;
  int rc = envelope_open(p, n, PEER_RECORD_DOMAIN, PEER_RECORD_PAYLOAD_TYPE, sizeof PEER_RECORD_PAYLOAD_TYPE, &e);
  if (rc) return rc;
  rc = peer_record_decode(e.payload, e.payload_len, out);
  if (rc == 0 && !peerid_equal(&out->id, &e.signer_id)) {
    peer_record_clear(out);
    rc = -EACCES;
  }
  envelope_clear(&e);
  return rc;
}

void peer_record_clear(peer_record *r) {
  free(r->addrs);
  memset(r, 0, sizeof *r);
}
