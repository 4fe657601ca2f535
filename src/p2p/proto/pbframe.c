/* pbframe.c — varint-length-prefixed protobuf framing (see pbframe.h). */
#include "p2p/proto/pbframe.h"

#include <errno.h>
#include <string.h>

#include "p2p/core/varint.h"

int pbframe_pack(const ProtobufCMessage *msg, size_t max, buf *out) {
  size_t sz = protobuf_c_message_get_packed_size(msg);
  if (sz > max) return -E2BIG;
  uint8_t hdr[VARINT_MAX_BYTES];
  size_t hl = varint_encode(sz, hdr);
  if (hl == 0) return -E2BIG;
  uint8_t *p;
  int rc = buf_reserve(out, hl + sz, &p);
  if (rc) return rc;
  memcpy(p, hdr, hl);
  size_t packed = protobuf_c_message_pack(msg, p + hl);
  if (packed != sz) return -EINVAL; /* cannot happen: protobuf-c packs what it measured */
  buf_commit(out, hl + sz);
  return 0;
}

/* The prefix reader is core/varint's (it has no protobuf in it, and DCUtR's codec uses it too). */
int pbframe_parse(const uint8_t *in, size_t n, size_t max, const uint8_t **body, size_t *body_len, size_t *consumed) {
  return varint_frame_parse(in, n, max, body, body_len, consumed);
}
