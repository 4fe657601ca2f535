/* perf.c — libp2p perf protocol state machines (see perf.h). */
#include "p2p/proto/perf.h"

#include <errno.h>
#include <string.h>

void perf_server_init(perf_server *p) { memset(p, 0, sizeof *p); }

int perf_server_feed(perf_server *p, const uint8_t *data, size_t len) {
  if (p->state != PERF_SRV_READ_HEADER && p->state != PERF_SRV_DRAIN) {
    p->state = PERF_SRV_FAILED;
    return -EPROTO;
  }
  if (p->state == PERF_SRV_READ_HEADER) {
    size_t take = PERF_HEADER_LEN - p->hdr_len;
    if (take > len) take = len;
    memcpy(p->hdr + p->hdr_len, data, take);
    p->hdr_len += take;
    data += take;
    len -= take;
    if (p->hdr_len < PERF_HEADER_LEN) return 0;
    uint64_t v = 0;
    for (int i = 0; i < PERF_HEADER_LEN; i++) v = (v << 8) | p->hdr[i];
    p->to_send = v;
    p->state = PERF_SRV_DRAIN;
  }
  p->received += len; /* the upload is discarded */
  return 0;
}

int perf_server_eof(perf_server *p) {
  if (p->state != PERF_SRV_DRAIN) {
    p->state = PERF_SRV_FAILED;
    return -EPROTO;
  }
  p->state = p->to_send ? PERF_SRV_SEND : PERF_SRV_DONE;
  return 0;
}

size_t perf_server_fill(const perf_server *p, uint8_t *dst, size_t cap) {
  if (p->state != PERF_SRV_SEND) return 0;
  uint64_t left = p->to_send - p->sent;
  size_t n = left < cap ? (size_t)left : cap;
  memset(dst, 0, n);
  return n;
}

void perf_server_sent(perf_server *p, size_t n) {
  if (p->state != PERF_SRV_SEND) return;
  uint64_t left = p->to_send - p->sent;
  p->sent += n < left ? n : left;
  if (p->sent == p->to_send) p->state = PERF_SRV_DONE;
}

void perf_client_init(perf_client *c, uint64_t upload_bytes, uint64_t download_bytes) {
  memset(c, 0, sizeof *c);
  c->upload_total = upload_bytes;
  c->download_total = download_bytes;
}

/* Header + upload, as one byte sequence of length 8 + upload_total (saturating). */
static uint64_t perf_client_total(const perf_client *c) {
  return c->upload_total > UINT64_MAX - PERF_HEADER_LEN ? UINT64_MAX
                                                         : c->upload_total + PERF_HEADER_LEN;
}

size_t perf_client_fill(const perf_client *c, uint8_t *dst, size_t cap) {
  if (c->state != PERF_CLI_SEND) return 0;
  uint64_t left = perf_client_total(c) - c->produced;
  size_t n = left < cap ? (size_t)left : cap;
  size_t i = 0;
  for (; i < n && c->produced + i < PERF_HEADER_LEN; i++)
    dst[i] = (uint8_t)(c->download_total >> (8 * (PERF_HEADER_LEN - 1 - (c->produced + i))));
  memset(dst + i, 0, n - i);
  return n;
}

void perf_client_sent(perf_client *c, size_t n) {
  if (c->state != PERF_CLI_SEND) return;
  uint64_t left = perf_client_total(c) - c->produced;
  c->produced += n < left ? n : left;
  if (c->produced == perf_client_total(c)) c->state = PERF_CLI_RECEIVE;
}

int perf_client_end_upload(perf_client *c) {
  if (c->state != PERF_CLI_SEND || c->produced < PERF_HEADER_LEN) return -EPROTO;
  c->state = PERF_CLI_RECEIVE;
  return 0;
}

int perf_client_feed(perf_client *c, const uint8_t *data, size_t len) {
  (void)data;
  if (c->state == PERF_CLI_FAILED || c->state == PERF_CLI_DONE) return -EPROTO;
  /* Bytes before our upload finished are legal on the wire only if the server misbehaves;
   * counting them keeps the byte total honest either way. */
  if (len > c->download_total - c->received) {
    c->state = PERF_CLI_FAILED;
    return -EPROTO;
  }
  c->received += len;
  return 0;
}

int perf_client_eof(perf_client *c) {
  if (c->state != PERF_CLI_RECEIVE || c->received != c->download_total) {
    c->state = PERF_CLI_FAILED;
    return -EPROTO;
  }
  c->state = PERF_CLI_DONE;
  return 0;
}

double perf_bits_per_second(uint64_t bytes, uint64_t t0_us, uint64_t t1_us) {
  if (t1_us <= t0_us) return 0;
  return (double)bytes * 8.0 * 1e6 / (double)(t1_us - t0_us);
}
