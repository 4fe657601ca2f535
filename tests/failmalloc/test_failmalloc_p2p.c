/* Allocation failures in the sans-I/O P2P engines: each scenario runs a complete exchange with
 * the Nth allocation failing, for every N (tests/support/failmalloc.h). Varint and multiaddr
 * allocate nothing; their scenario proves it stays so. Keys allocate only inside OpenSSL
 * (RSA, ECDSA, secp256k1). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../p2p/hexutil.h"
#include "../p2p/keyvectors.h"
#include "../support/failmalloc.h"
#include "p2p/core/keys.h"
#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"
#include "p2p/core/varint.h"
#include "p2p/proto/identify.h"
#include "p2p/proto/mss.h"
#include "p2p/proto/noise.h"
#include "p2p/proto/yamux.h"

/* ---- varint, multiaddr ---- */

static int sc_varint_multiaddr(void *ud) {
  (void)ud;
  uint8_t enc[VARINT_MAX_BYTES];
  uint64_t v;
  size_t used;
  assert_int_equal(varint_encode(300, enc), 2);
  assert_int_equal(varint_decode(enc, 2, &v, &used), 0);
  assert_int_equal(v, 300);
  static const char *const texts[] = {"/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/9710/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
                                      "/dns4/example.com/tcp/443/wss", "/ip4/1.2.3.4/udp/1/quic-v1/certhash/uEiAkH5a4DPGKUuOBjYw0CgwjvcJCJMD2K_1aluKR_tpevQ"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    multiaddr ma, back;
    char text[MULTIADDR_STR_MAX];
    assert_int_equal(multiaddr_parse(texts[i], &ma), 0);
    assert_int_equal(multiaddr_to_string(&ma, text, sizeof text), 0);
    assert_int_equal(multiaddr_from_bytes(ma.bytes, ma.len, &back), 0);
    assert_true(multiaddr_equal(&ma, &back));
  }
  return 0;
}

/* ---- keys ---- */

static const int k_keys_errs[] = {-EINVAL, -EBADMSG, -ENOMEM, 0};

static int verify_vector(const char *pub_hex, const char *sig_hex, const char *id) {
  uint8_t pb[KEYS_PUBLIC_PB_MAX], sig[KEYS_SIG_MAX];
  size_t pn = hex_decode(pub_hex, pb, sizeof pb), sn = hex_decode(sig_hex, sig, sizeof sig);
  keys_public k;
  int rc = (int)FM_STEP(keys_public_decode(pb, pn, &k), k_keys_errs);
  if (rc) return rc;
  const uint8_t *msg = (const uint8_t *)JS_SIGNED_MSG;
  rc = (int)FM_STEP(keys_public_verify(&k, msg, strlen(JS_SIGNED_MSG), sig, sn), k_keys_errs);
  if (rc) return rc;
  /* A signature over another message never verifies, failure injected or not. */
  assert_int_not_equal(keys_public_verify(&k, msg, strlen(JS_SIGNED_MSG) - 1, sig, sn), 0);
  peerid p;
  char text[128];
  assert_int_equal(peerid_from_public(&k, &p), 0);
  assert_int_equal(peerid_to_string(&p, text, sizeof text), 0);
  assert_string_equal(text, id);
  return 0;
}

static int sc_keys_ed25519(void *ud) { return verify_vector(JS_ED25519_PUB, JS_ED25519_SIG, JS_ED25519_ID); }
static int sc_keys_secp256k1(void *ud) { return verify_vector(JS_SECP256K1_PUB, JS_SECP256K1_SIG, JS_SECP256K1_ID); }
static int sc_keys_rsa(void *ud) { return verify_vector(JS_RSA_PUB, JS_RSA_SIG, JS_RSA_ID); }
static int sc_keys_ecdsa(void *ud) {
  uint8_t pb[KEYS_PUBLIC_PB_MAX];
  size_t pn = hex_decode(SPEC_ECDSA_PUB, pb, sizeof pb);
  keys_public k;
  return (int)FM_STEP(keys_public_decode(pb, pn, &k), k_keys_errs);
}

/* ---- multistream-select ---- */

/* Moves `from` into m with mss_feed; replies go to `reply`. */
static long mss_pump(mss *m, buf *from, buf *reply) {
  if (!buf_len(from) || mss_state_get(m) == MSS_DONE) return 0;
  ssize_t n = mss_feed(m, buf_ptr(from), buf_len(from), reply);
  if (n < 0) {
    FM_STEP(n, NULL);
    assert_int_equal(mss_state_get(m), MSS_FAILED); /* the documented state after an error */
    assert_int_equal(mss_error(m), n);
    return n;
  }
  buf_consume(from, (size_t)n);
  return 0;
}

static int sc_mss(void *ud) {
  (void)ud;
  static const char *const offer[] = {"/mplex/6.7.0", "/yamux/1.0.0"};
  static const char *const have[] = {"/yamux/1.0.0", "/noise"};
  mss *d = NULL, *l = NULL;
  buf dout, lout;
  buf_init(&dout, 4096);
  buf_init(&lout, 4096);
  long rc = FM_STEP(mss_dialer_new(&d, offer, 2), NULL);
  if (!rc) rc = FM_STEP(mss_listener_new(&l, have, 2), NULL);
  if (!rc) rc = FM_STEP(mss_start(d, &dout), NULL);
  if (!rc) rc = FM_STEP(mss_start(l, &lout), NULL);
  for (int round = 0; !rc && round < 10; round++) {
    if (mss_state_get(d) == MSS_DONE && mss_state_get(l) == MSS_DONE) break;
    if (!(rc = mss_pump(l, &dout, &lout))) rc = mss_pump(d, &lout, &dout);
  }
  if (!rc) {
    assert_int_equal(mss_state_get(d), MSS_DONE);
    assert_string_equal(mss_selected(d), "/yamux/1.0.0");
    assert_string_equal(mss_selected(l), "/yamux/1.0.0");
  }
  mss_free(d);
  mss_free(l);
  buf_free(&dout);
  buf_free(&lout);
  return (int)rc;
}

/* ---- Noise handshake and transport ---- */

static const uint8_t SEED_I[32] = {1}, SEED_R[32] = {2};
static const uint8_t STAT_I[32] = {3}, STAT_R[32] = {4}, EPH_I[32] = {5}, EPH_R[32] = {6};
/* -EIO: an OpenSSL call failed inside (its own allocation); the session is failed either way. */
static const int k_noise_errs[] = {-ENOMEM, -EIO, 0};

static int noise_feed_all(noise_session *s, buf *in, buf *wire, buf *plain) {
  if (!buf_len(in)) return 0;
  int rc = noise_feed(s, buf_ptr(in), buf_len(in), wire, plain);
  if (rc < 0) {
    FM_STEP(rc, k_noise_errs);
    /* errors are sticky: the next call reports the same one */
    uint8_t b = 0;
    assert_int_equal(noise_feed(s, &b, 1, wire, plain), rc);
    assert_int_equal(noise_encrypt(s, &b, 1, wire), rc);
    return rc;
  }
  buf_reset(in);
  return 0;
}

static int sc_noise(void *ud) {
  (void)ud;
  static uint8_t big[150000];
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7);
  keys_private ki, kr;
  assert_int_equal(keys_ed25519_from_seed(SEED_I, &ki), 0);
  assert_int_equal(keys_ed25519_from_seed(SEED_R, &kr), 0);
  static const char *const muxers[] = {"/yamux/1.0.0"};
  noise_config ci = {.initiator = true, .identity = &ki, .muxers = muxers, .n_muxers = 1,
                     .test_static_sk = STAT_I, .test_ephemeral_sk = EPH_I};
  noise_config cr = {.initiator = false, .identity = &kr, .muxers = muxers, .n_muxers = 1,
                     .test_static_sk = STAT_R, .test_ephemeral_sk = EPH_R};
  noise_session *i = NULL, *r = NULL;
  buf iw, ip, rw, rp;
  buf_init(&iw, 1 << 20);
  buf_init(&ip, 1 << 20);
  buf_init(&rw, 1 << 20);
  buf_init(&rp, 1 << 20);
  int rc = (int)FM_STEP(noise_session_new(&ci, &i), NULL);
  if (!rc) rc = (int)FM_STEP(noise_session_new(&cr, &r), NULL);
  if (!rc) rc = (int)FM_STEP(noise_start(i, &iw), k_noise_errs);
  for (int round = 0; !rc && round < 4 && !(noise_is_established(i) && noise_is_established(r)); round++) {
    if (!(rc = noise_feed_all(r, &iw, &rw, &rp))) rc = noise_feed_all(i, &rw, &iw, &ip);
  }
  if (!rc) {
    assert_true(noise_is_established(i) && noise_is_established(r));
    assert_string_equal(noise_negotiated_muxer(i), "/yamux/1.0.0");
    /* transport: a small message each way, then one of several frames */
    rc = (int)FM_STEP(noise_encrypt(i, (const uint8_t *)"ping", 4, &iw), k_noise_errs);
    if (!rc) rc = noise_feed_all(r, &iw, &rw, &rp);
    if (!rc) rc = (int)FM_STEP(noise_encrypt(r, big, sizeof big, &rw), k_noise_errs);
    if (!rc) rc = noise_feed_all(i, &rw, &iw, &ip);
    if (!rc) {
      assert_int_equal(buf_len(&rp), 4);
      assert_memory_equal(buf_ptr(&rp), "ping", 4);
      assert_int_equal(buf_len(&ip), sizeof big);
      assert_memory_equal(buf_ptr(&ip), big, sizeof big);
    }
  }
  noise_session_free(i);
  noise_session_free(r);
  buf_free(&iw);
  buf_free(&ip);
  buf_free(&rw);
  buf_free(&rp);
  keys_private_wipe(&ki);
  keys_private_wipe(&kr);
  return rc;
}

/* ---- Yamux ---- */

#define YS 32 /* streams a side keeps */
#define YOPEN 24 /* streams the client opens: enough RSTs, when the server cannot take them, to need a larger output buffer */

typedef struct yside {
  yamux_session *s;
  yamux_stream *st[YS];
  size_t n;
  size_t rx[YS]; /* bytes received per stream slot */
  int fins[YS], resets[YS], writables, pongs, goaways;
} yside;

static int yslot(yside *d, yamux_stream *st) {
  for (size_t i = 0; i < d->n; i++)
    if (d->st[i] == st) return (int)i;
  return -1;
}

static int ycb_open(yamux_session *s, yamux_stream *st, void *ud) {
  yside *d = ud;
  if (d->n >= YS) return -1;
  d->st[d->n++] = st;
  return 0;
}
static void ycb_data(yamux_session *s, yamux_stream *st, const uint8_t *p, size_t n, void *ud) {
  yside *d = ud;
  int i = yslot(d, st);
  assert_true(i >= 0);
  d->rx[i] += n;
  /* A failed window update fails the session; feed reports it. */
  if (yamux_stream_consume(st, n) != 0) assert_int_not_equal(yamux_session_error(s), 0);
}
static void ycb_fin(yamux_session *s, yamux_stream *st, void *ud) {
  yside *d = ud;
  int i = yslot(d, st);
  if (i >= 0) d->fins[i]++;
}
static void ycb_reset(yamux_session *s, yamux_stream *st, void *ud) {
  yside *d = ud;
  int i = yslot(d, st);
  if (i >= 0) d->resets[i]++;
}
static void ycb_writable(yamux_session *s, yamux_stream *st, void *ud) { ((yside *)ud)->writables++; }
static void ycb_pong(yamux_session *s, uint32_t opaque, uint64_t rtt, void *ud) { ((yside *)ud)->pongs++; }
static void ycb_goaway(yamux_session *s, uint32_t code, void *ud) { ((yside *)ud)->goaways++; }
static uint64_t ycb_now(void *ud) { return 1000000; }
static const yamux_callbacks YCBS = {ycb_open, ycb_data, ycb_fin, ycb_reset, NULL, ycb_writable, ycb_pong, ycb_goaway, ycb_now};

/* A failed session answers every later call with -ESHUTDOWN, never crashes; a stream the peer
 * could not accept (no memory for it) is reset: -ECONNRESET, or -EPIPE once closed. */
static const int k_yamux_errs[] = {-ENOMEM, -ESHUTDOWN, -ECONNRESET, -EPIPE, 0};


static uint8_t g_wire[2u << 20];

/* Delivers a's pending output to b. */
static int yxfer(yside *a, yside *b) {
  size_t len;
  const uint8_t *p = yamux_session_out(a->s, &len);
  if (!len) return 0;
  assert_true(len <= sizeof g_wire);
  memcpy(g_wire, p, len);
  yamux_session_out_consume(a->s, len);
  int rc = yamux_session_feed(b->s, g_wire, len);
  if (rc) {
    FM_STEP(rc, k_yamux_errs);
    assert_int_equal(yamux_session_error(b->s), rc);
  }
  return rc;
}

static int yexchange(yside *c, yside *s) {
  int rc = 0;
  for (int i = 0; i < 4 && !rc; i++)
    if (!(rc = yxfer(c, s))) rc = yxfer(s, c);
  return rc;
}

/* After the session failed, every stream the owner still holds was reset, and the owner heard
 * it (on_stream_reset) unless it reset or fully closed the stream itself. */
static void assert_streams_told(yside *d, const bool *local_reset) {
  if (!d->s || !yamux_session_error(d->s)) return;
  for (size_t k = 0; k < d->n; k++) {
    yamux_stream *st = d->st[k];
    bool closed = yamux_stream_read_closed(st) && yamux_stream_write_closed(st);
    assert_true(closed);
    if (!(local_reset && local_reset[k]) && !(d->fins[k] && yamux_stream_write_closed(st) && !yamux_stream_is_reset(st)))
      assert_int_equal(d->resets[k], 1);
  }
}

static int sc_yamux(void *ud) {
  (void)ud;
  static uint8_t data[400000];
  memset(data, 'y', sizeof data);
  yside c = {0}, s = {0};
  bool c_reset[YS] = {0};
  /* A small output limit on the client, so that writes block on output space too and the drain
   * wakes them (on_stream_writable from yamux_session_out_consume). */
  yamux_config ccfg;
  yamux_config_default(&ccfg);
  ccfg.out_soft_limit = 48 * 1024;
  ccfg.out_hard_limit = 64 * 1024;
  ccfg.max_frame_data = 16 * 1024;
  /* A server window larger than the bulk transfer: only the output limit blocks the writer, so
   * only the drain can wake it. */
  yamux_config scfg;
  yamux_config_default(&scfg);
  scfg.initial_window = 1024 * 1024;
  int rc = (int)FM_STEP(yamux_session_new(&c.s, true, &ccfg, &YCBS, &c), NULL);
  if (!rc) rc = (int)FM_STEP(yamux_session_new(&s.s, false, &scfg, &YCBS, &s), NULL);
  /* streams with a greeting on each, echoed back */
  for (int k = 0; !rc && k < YOPEN; k++) {
    yamux_stream *st;
    rc = (int)FM_STEP(yamux_stream_open(c.s, &st), k_yamux_errs);
    if (!rc) c.st[c.n++] = st;
  }
  for (size_t k = 0; !rc && k < c.n; k++) {
    ssize_t w = yamux_stream_write(c.st[k], (const uint8_t *)"hello", 5);
    if (w < 0) rc = (int)FM_STEP(w, k_yamux_errs);
    else assert_int_equal(w, 5);
  }
  if (!rc) rc = yexchange(&c, &s);
  if (!rc && !fm_failed()) assert_int_equal(s.n, YOPEN);
  for (size_t k = 0; !rc && k < s.n; k++) {
    ssize_t w = yamux_stream_write(s.st[k], (const uint8_t *)"hi", 2);
    if (w < 0) rc = (int)FM_STEP(w, k_yamux_errs);
  }
  if (!rc) rc = yexchange(&c, &s);
  /* Bulk data on stream 0, written only when the stream is writable: after a short or -EAGAIN
   * write the writer waits for on_stream_writable, as a real owner does. A wait that nothing
   * can end is a lost wakeup. */
  size_t sent = 0;
  bool blocked = false;
  int woken = 0;
  while (!rc && sent < sizeof data) {
    if (!blocked) {
      ssize_t w = yamux_stream_write(c.st[0], data + sent, sizeof data - sent);
      if (w == -EAGAIN) {
        blocked = true;
        woken = c.writables;
      } else if (w < 0) {
        rc = (int)FM_STEP(w, k_yamux_errs);
        break;
      } else {
        sent += (size_t)w;
        if (sent < sizeof data) { /* a short write promises on_stream_writable too */
          blocked = true;
          woken = c.writables;
        }
      }
    }
    rc = yexchange(&c, &s);
    if (blocked && c.writables > woken) blocked = false;
    if (!rc && blocked && !yamux_session_out_pending(c.s) && !yamux_session_out_pending(s.s))
      fail_msg("yamux: stream 0 waits for on_stream_writable with nothing left to drain (sent %zu)", sent);
  }
  if (!rc && !fm_failed()) {
    assert_int_equal(sent, sizeof data);
    assert_int_equal(s.rx[0], 5 + sizeof data);
    assert_int_equal(c.rx[0], 2);
    assert_true(c.writables > 0);
  }
  /* ping, half-close one stream both ways, reset another, go away */
  if (!rc) rc = (int)FM_STEP(yamux_session_ping(c.s, 7), k_yamux_errs);
  if (!rc && c.n > 1) rc = (int)FM_STEP(yamux_stream_close(c.st[1]), k_yamux_errs);
  if (!rc) rc = yexchange(&c, &s);
  if (!rc && s.n > 1) rc = (int)FM_STEP(yamux_stream_close(s.st[1]), k_yamux_errs);
  if (!rc && c.n > 2) {
    yamux_stream_reset(c.st[2]);
    c_reset[2] = true;
  }
  if (!rc) rc = yexchange(&c, &s);
  if (!rc) rc = (int)FM_STEP(yamux_session_goaway(s.s, YAMUX_GOAWAY_NORMAL), k_yamux_errs);
  if (!rc) rc = yexchange(&c, &s);
  if (!rc && !fm_failed()) {
    assert_int_equal(c.pongs, 1);
    assert_int_equal(s.fins[1], 1);
    assert_int_equal(c.fins[1], 1);
    assert_int_equal(s.resets[2], 1);
    assert_int_equal(c.goaways, 1);
  }
  /* After a failure: the owner knows about every stream, and a failed session refuses work. */
  assert_streams_told(&c, c_reset);
  assert_streams_told(&s, NULL);
  if (c.s && yamux_session_error(c.s)) {
    yamux_stream *st;
    assert_int_equal(yamux_stream_open(c.s, &st), -ESHUTDOWN);
  }
  for (size_t k = 0; k < c.n; k++) yamux_stream_release(c.st[k]);
  for (size_t k = 0; k < s.n; k++) yamux_stream_release(s.st[k]);
  yamux_session_free(c.s);
  yamux_session_free(s.s);
  return rc;
}

/* ---- identify ---- */

static int sc_identify(void *ud) {
  (void)ud;
  multiaddr addrs[3], obs;
  assert_int_equal(multiaddr_parse("/ip4/127.0.0.1/tcp/9710", &addrs[0]), 0);
  assert_int_equal(multiaddr_parse("/ip6/::1/tcp/9710", &addrs[1]), 0);
  assert_int_equal(multiaddr_parse("/dns4/example.com/tcp/443/wss", &addrs[2]), 0);
  assert_int_equal(multiaddr_parse("/ip4/10.1.2.3/tcp/5555", &obs), 0);
  uint8_t pk[KEYS_PUBLIC_PB_MAX];
  size_t pkn = hex_decode(JS_ED25519_PUB, pk, sizeof pk);
  char *protos[] = {"/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/mcp+p2p/1.0.0"};
  identify_msg m = {.protocol_version = IDENTIFY_PROTOCOL_VERSION, .agent_version = "peermcp/test",
                    .public_key = pk, .public_key_len = pkn, .listen_addrs = addrs, .n_listen_addrs = 3,
                    .has_observed_addr = true, .observed_addr = obs, .protocols = protos, .n_protocols = 3};
  buf out;
  buf_init(&out, IDENTIFY_MAX_MSG + 16);
  int rc = (int)FM_STEP(identify_encode(&m, &out), NULL);
  if (!rc) {
    const uint8_t *body;
    size_t blen, used;
    assert_int_equal(identify_frame_parse(buf_ptr(&out), buf_len(&out), IDENTIFY_MAX_MSG, &body, &blen, &used), 0);
    identify_msg d;
    rc = (int)FM_STEP(identify_decode(body, blen, &d), NULL);
    if (!rc) {
      assert_int_equal(d.n_listen_addrs, 3);
      assert_int_equal(d.n_protocols, 3);
      assert_string_equal(d.protocols[2], "/mcp+p2p/1.0.0");
      assert_string_equal(d.agent_version, "peermcp/test");
      identify_msg_clear(&d);
    }
  }
  buf_free(&out);
  return rc;
}

#define SCENARIO(fn, ...)                                                     \
  static void test_failmalloc_##fn(void **state) {                            \
    (void)state;                                                               \
    fm_opts o = {__VA_ARGS__};                                                 \
    (void)fm_run_scenario(#fn, sc_##fn, NULL, &o);                             \
  }
/* OpenSSL's allocations count where our code calls it: keys (FM_FROM only, see fm_opts) and the
 * Noise transport ciphers. */
SCENARIO(varint_multiaddr, 0)
SCENARIO(keys_ed25519, 0)
SCENARIO(keys_secp256k1, .openssl = true, .from_only = true)
SCENARIO(keys_ecdsa, .openssl = true, .from_only = true)
SCENARIO(keys_rsa, .openssl = true, .from_only = true)
SCENARIO(mss, 0)
SCENARIO(noise, .openssl = true)
SCENARIO(yamux, 0)
SCENARIO(identify, 0)

int main(void) {
  fm_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_failmalloc_varint_multiaddr), cmocka_unit_test(test_failmalloc_keys_ed25519),
      cmocka_unit_test(test_failmalloc_keys_secp256k1), cmocka_unit_test(test_failmalloc_keys_ecdsa),
      cmocka_unit_test(test_failmalloc_keys_rsa),
      cmocka_unit_test(test_failmalloc_mss),              cmocka_unit_test(test_failmalloc_noise),
      cmocka_unit_test(test_failmalloc_yamux),            cmocka_unit_test(test_failmalloc_identify),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
