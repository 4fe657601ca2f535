/* ping.c — libp2p ping payloads and echo (see ping.h). */
#include "p2p/proto/ping.h"

#include <errno.h>
#include <string.h>

#include <sodium.h>

void ping_client_init(ping_client *c) { memset(c, 0, sizeof *c); }

int ping_client_start(ping_client *c, uint64_t now_us, uint8_t payload[PING_PAYLOAD_LEN]) {
  if (c->in_flight) return -EBUSY;
  randombytes_buf(c->sent, sizeof c->sent);
  memcpy(payload, c->sent, PING_PAYLOAD_LEN);
  c->got_len = 0;
  c->sent_us = now_us;
  c->in_flight = true;
  return 0;
}

int ping_client_feed(ping_client *c, const uint8_t *data, size_t len, uint64_t now_us,
                     size_t *used, uint64_t *rtt_us) {
  *used = 0;
  if (len == 0) return 0;
  if (!c->in_flight) return -EPROTO;
  size_t take = PING_PAYLOAD_LEN - c->got_len;
  if (take > len) take = len;
  memcpy(c->got + c->got_len, data, take);
  c->got_len += take;
  *used = take;
  if (c->got_len < PING_PAYLOAD_LEN) return 0;
  c->in_flight = false;
  c->got_len = 0;
  if (sodium_memcmp(c->got, c->sent, PING_PAYLOAD_LEN) != 0) return -EPROTO;
  *rtt_us = now_us >= c->sent_us ? now_us - c->sent_us : 0;
  return 1;
}

void ping_server_init(ping_server *p) { memset(p, 0, sizeof *p); }

int ping_server_feed(ping_server *p, const uint8_t *data, size_t len, buf *out) {
  while (len) {
    size_t take = PING_PAYLOAD_LEN - p->cur_len;
    if (take > len) take = len;
    memcpy(p->cur + p->cur_len, data, take);
    p->cur_len += take;
    data += take;
    len -= take;
    if (p->cur_len == PING_PAYLOAD_LEN) {
      int rc = buf_append(out, p->cur, PING_PAYLOAD_LEN);
      if (rc) return rc;
      p->cur_len = 0;
      p->echoed++;
    }
  }
  return 0;
}

int ping_server_finish(const ping_server *p) { return p->cur_len ? -EPROTO : 0; }
