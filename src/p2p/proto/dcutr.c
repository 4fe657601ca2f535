/* dcutr.c — DCUtR HolePunch codec (see dcutr.h). */
#include "p2p/proto/dcutr.h"

#include <errno.h>
#include <string.h>

#include "holepunch.pb-c.h"
#include "p2p/proto/pbframe.h"

int dcutr_encode(const dcutr_msg *m, buf *out) {
  if (m->n_addrs > DCUTR_MAX_ADDRS) return -E2BIG;
  ProtobufCBinaryData a[DCUTR_MAX_ADDRS];
  Holepunch__HolePunch pb = HOLEPUNCH__HOLE_PUNCH__INIT;
  pb.has_type = 1;
  pb.type = m->type;
  for (size_t i = 0; i < m->n_addrs; i++) a[i] = (ProtobufCBinaryData){m->addrs[i].len, (uint8_t *)m->addrs[i].bytes};
  pb.n_obsaddrs = m->n_addrs;
  pb.obsaddrs = a;
  return pbframe_pack(&pb.base, DCUTR_MAX_MSG, out);
}

int dcutr_decode(const uint8_t *p, size_t n, dcutr_msg *out) {
  memset(out, 0, sizeof *out);
  if (n > DCUTR_MAX_MSG) return -E2BIG;
  Holepunch__HolePunch *pb = holepunch__hole_punch__unpack(NULL, n, p);
  if (!pb) return -EINVAL;
  int rc = pb->has_type ? 0 : -EINVAL;
  if (rc == 0 && pb->n_obsaddrs > DCUTR_MAX_ADDRS) rc = -E2BIG;
  if (rc == 0) {
    out->type = pb->type;
    for (size_t i = 0; i < pb->n_obsaddrs; i++) {
      if (multiaddr_from_bytes(pb->obsaddrs[i].data, pb->obsaddrs[i].len, &out->addrs[out->n_addrs]) == 0)
        out->n_addrs++;
      else
        out->n_skipped++;
    }
  }
  holepunch__hole_punch__free_unpacked(pb, NULL);
  return rc;
}

int dcutr_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len, size_t *consumed) {
  return pbframe_parse(in, n, DCUTR_MAX_MSG, msg, msg_len, consumed);
}
