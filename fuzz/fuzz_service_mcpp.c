/* fuzz_service_mcpp.c — libFuzzer target: the /mcp+p2p/1.0.0 server session (service/mcpp.h)
 * and the legacy NDJSON decoder (service/frame.h) on arbitrary bytes.
 *
 * Input layout: byte 0 = feed chunk size - 1; byte 1 bit 0 = complete tool calls at once
 * (else they stay in flight until the conn is freed, which must detach them); the rest is fed
 * as received bytes. Checks the contract: every output byte is a well-formed frame whose JSON
 * is an object, the conn is done after an error, and nothing leaks. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "service/frame.h"
#include "service/mcpp.h"

typedef struct pending {
  uint64_t call_no[64];
  size_t n;
  int detached;
} pending;

static int start(void *ud, svc_mcpp_conn *c, uint64_t call_no, const char *tool, json_t *args,
                 const mcp_auth *auth, uint32_t timeout_ms, void **handle) {
  pending *p = ud;
  (void)c, (void)tool, (void)args, (void)auth, (void)timeout_ms;
  if (p->n == 64) return -12;
  p->call_no[p->n++] = call_no;
  *handle = p;
  return 0;
}
static void detach(void *ud, void *h) {
  (void)h;
  ((pending *)ud)->detached++;
}

static void check_output(buf *out) {
  svc_frame_dec d;
  svc_frame_dec_init(&d, 64u << 20);
  size_t pos = 0;
  while (pos < buf_len(out)) {
    size_t used;
    svc_frame_status st = svc_frame_dec_feed(&d, buf_ptr(out) + pos, buf_len(out) - pos, &used);
    pos += used;
    if (st == SVC_FRAME_READY) json_decref(svc_frame_dec_take(&d));
    else if (st == SVC_FRAME_NEED_MORE && used == 0) abort(); /* truncated output frame */
    else if (st < 0) abort();
  }
  if (svc_frame_dec_mid_frame(&d)) abort();
  svc_frame_dec_free(&d);
  buf_reset(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t chunk = (size_t)data[0] + 1;
  bool complete_now = data[1] & 1;
  data += 2;
  size -= 2;
  static svc_auth_policy *pol;
  if (!pol) {
    pol = svc_auth_policy_new();
    if (svc_auth_policy_set_token(pol, "tok", 0) != 0) abort();
  }
  pending p = {0};
  svc_mcpp_env env = {0};
  env.peer_id = "12D3KooWFuzz";
  env.policy = pol;
  env.max_frame_bytes = 4096;
  env.rate_capacity = 64;
  env.rate_refill_per_s = 1;
  env.call_start = start;
  env.call_detach = detach;
  env.hooks_ud = &p;
  svc_mcpp_conn *c = svc_mcpp_new(&env, "12D3KooWPeer", NULL);
  if (!c) return 0;
  json_t *envelope = json_pack("{s:s, s:{s:i}}", "status", "success", "result", "x", 1);
  size_t pos = 0;
  while (pos < size) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    int rc = svc_mcpp_feed(c, data + pos, n);
    pos += n;
    if (complete_now) {
      for (size_t i = 0; i < p.n; i++) svc_mcpp_call_done(c, p.call_no[i], MCP_DISPATCH_OK, envelope);
      p.n = 0;
    }
    check_output(svc_mcpp_output(c));
    if (rc < 0) {
      if (!svc_mcpp_done(c)) abort();
      break;
    }
  }
  svc_mcpp_eof(c);
  svc_mcpp_free(c);
  json_decref(envelope);

  /* the same bytes as one legacy NDJSON request */
  svc_ndjson_dec nd;
  svc_ndjson_dec_init(&nd, 4096);
  svc_frame_status st = svc_ndjson_dec_feed(&nd, data, size);
  if (st == SVC_FRAME_NEED_MORE) st = svc_ndjson_dec_finish(&nd);
  json_t *m = svc_ndjson_dec_take(&nd);
  if ((st == SVC_FRAME_READY) != (m != NULL)) abort();
  if (m && !json_is_object(m)) abort();
  json_decref(m);
  svc_ndjson_dec_free(&nd);
  return 0;
}
