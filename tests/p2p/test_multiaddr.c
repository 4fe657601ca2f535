/* Unit tests for p2p/core/multiaddr: text ⇄ binary against js-libp2p's encodings, and
 * rejection of malformed input. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "hexutil.h"
#include "p2p/core/multiaddr.h"

/* text, binary as @multiformats/multiaddr produces it */
static const char *const vectors[][2] = {
    {"/ip4/127.0.0.1/tcp/4001", "047f000001060fa1"},
    {"/ip6/::1/tcp/9710", "29000000000000000000000000000000010625ee"},
    {"/dns4/example.com/tcp/443/wss", "360b6578616d706c652e636f6d0601bbde03"},
    {"/ip4/1.2.3.4/udp/4001/quic-v1/webtransport", "040102030491020fa1cd03d103"},
    {"/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
     "3813626f6f7473747261702e6c69627032702e696fa50322122006b3608aa000274049eb28ad8e793a26ff6fab281a7d3bd7"
     "7cd18eb745dfaabb"},
    {"/ip4/1.2.3.4/tcp/1/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq/p2p-circuit/p2p/"
     "QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
     "0401020304060001a503260024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27ea2"
     "02a50322122006b3608aa000274049eb28ad8e793a26ff6fab281a7d3bd77cd18eb745dfaabb"},
    {"/ip6/2001:db8::1/udp/53/quic", "2920010db800000000000000000000000191020035cc03"},
    {"/dns6/x.y/tcp/80/ws", "3703782e79060050dd03"},
    {"/dns/localhost/tcp/1", "35096c6f63616c686f7374060001"},
};

static void test_multiaddr_matches_js_encodings(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
    multiaddr ma, mb;
    uint8_t b[MULTIADDR_MAX_BYTES];
    size_t n = hex_decode(vectors[i][1], b, sizeof b);
    assert_int_equal(multiaddr_parse(vectors[i][0], &ma), 0);
    assert_int_equal(ma.len, n);
    assert_memory_equal(ma.bytes, b, n);
    assert_int_equal(multiaddr_from_bytes(b, n, &mb), 0);
    char s[MULTIADDR_STR_MAX];
    assert_int_equal(multiaddr_to_string(&mb, s, sizeof s), 0);
    assert_string_equal(s, vectors[i][0]);
  }
}

static void test_multiaddr_p2p_accepts_cid_form_and_prints_base58(void **state) {
  (void)state;
  multiaddr ma;
  assert_int_equal(
      multiaddr_parse("/ip4/1.2.3.4/tcp/5/p2p/bafzaajaiaejca2u732wrgmec7btgqviiymkms464yrz2j2c6uf7faj62vkiaixuz", &ma), 0);
  char s[MULTIADDR_STR_MAX];
  assert_int_equal(multiaddr_to_string(&ma, s, sizeof s), 0);
  assert_string_equal(s, "/ip4/1.2.3.4/tcp/5/p2p/12D3KooWGzamsY3XdHFrC79EvDaqqmcRnKgQuRrorBvuaNTKUvDN");
  peerid id;
  assert_int_equal(multiaddr_get_peerid(&ma, &id), 0);
  multiaddr bare;
  multiaddr_strip_p2p(&ma, &bare);
  assert_int_equal(multiaddr_to_string(&bare, s, sizeof s), 0);
  assert_string_equal(s, "/ip4/1.2.3.4/tcp/5");
  assert_int_equal(multiaddr_get_peerid(&bare, &id), -ENOENT);
  /* legacy /ipfs/ alias prints as /p2p/ */
  assert_int_equal(multiaddr_parse("/ipfs/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN", &ma), 0);
  assert_int_equal(multiaddr_to_string(&ma, s, sizeof s), 0);
  assert_string_equal(s, "/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN");
}

static void test_multiaddr_other_protocols_roundtrip(void **state) {
  (void)state;
  const char *ok[] = {
      "/ip4/10.0.0.1/udp/9/quic",
      "/ip4/10.0.0.1/tcp/80/http",
      "/ip4/10.0.0.1/tcp/443/tls/sni/example.org/http",
      "/ip4/1.2.3.4/udp/1/webrtc-direct",
      "/ip6zone/eth0/ip6/fe80::1/tcp/1",
      "/ip4/1.2.3.0/ipcidr/24",
      "/unix/%2Ftmp%2Fpeermcp.sock",
      "/unix/%2Frun%2Fa%20b%25c.sock/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
      "/memory/42",
      "/p2p-circuit",
      "/ip4/1.2.3.4/tcp/1/ws/noise",
      "/ip4/1.2.3.4/tcp/1/http/http-path/a%2Fb",
      "/ip4/1.2.3.4/udp/1/quic-v1/webtransport/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
  };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    multiaddr ma;
    char s[MULTIADDR_STR_MAX];
    assert_int_equal(multiaddr_parse(ok[i], &ma), 0);
    assert_int_equal(multiaddr_to_string(&ma, s, sizeof s), 0);
    assert_string_equal(s, ok[i]);
  }
}

/* /unix/: js-libp2p's text form is one percent-encoded segment; the older slash form is read
 * (up to a /p2p/ part) and prints in the new form; the binary value is the path either way. */
static void test_multiaddr_unix_forms(void **state) {
  (void)state;
  multiaddr a, b;
  char s[MULTIADDR_STR_MAX], path[128];
  assert_int_equal(multiaddr_parse("/unix/%2Ftmp%2Fx.sock/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN", &a), 0);
  assert_int_equal(multiaddr_parse("/unix/tmp/x.sock/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN", &b), 0);
  assert_true(multiaddr_equal(&a, &b));
  assert_int_equal(multiaddr_unix_path(&a, path, sizeof path), 0);
  assert_string_equal(path, "/tmp/x.sock");
  peerid id;
  assert_int_equal(multiaddr_get_peerid(&b, &id), 0);
  assert_int_equal(multiaddr_to_string(&b, s, sizeof s), 0);
  assert_string_equal(s, "/unix/%2Ftmp%2Fx.sock/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN");
  assert_int_equal(multiaddr_parse("/unix/tmp/x.sock", &b), 0);
  assert_int_equal(multiaddr_unix_path(&b, path, sizeof path), 0);
  assert_string_equal(path, "/tmp/x.sock");
  assert_int_equal(multiaddr_parse("/unix/rel.sock", &b), 0); /* one plain segment: a relative path */
  assert_int_equal(multiaddr_unix_path(&b, path, sizeof path), 0);
  assert_string_equal(path, "rel.sock");
  assert_int_equal(multiaddr_unix_path(&b, path, 8), -ENAMETOOLONG);
  assert_int_equal(multiaddr_parse("/ip4/1.2.3.4/tcp/5", &b), 0);
  assert_int_equal(multiaddr_unix_path(&b, path, sizeof path), -EAFNOSUPPORT);
  assert_int_not_equal(multiaddr_parse("/unix/%2Fa%00b", &b), 0);
  assert_int_not_equal(multiaddr_parse("/unix/%zz", &b), 0);
  assert_int_not_equal(multiaddr_parse("/unix/", &b), 0);
  /* a path whose encoded text is longer than its bytes (every '/' is %2F) reads back whole */
  char longp[301];
  for (size_t i = 0; i < 300; i++) longp[i] = i % 2 ? 'a' : '/';
  longp[300] = 0;
  assert_int_equal(multiaddr_from_unix_path(longp, &a), 0);
  assert_int_equal(multiaddr_to_string(&a, s, sizeof s), 0);
  assert_int_equal(multiaddr_parse(s, &b), 0);
  assert_true(multiaddr_equal(&a, &b));
  assert_int_equal(multiaddr_from_unix_path("/run/p2p.sock", &b), 0);
  assert_int_equal(multiaddr_to_string(&b, s, sizeof s), 0);
  assert_string_equal(s, "/unix/%2Frun%2Fp2p.sock");
}

static void test_multiaddr_rejects_malformed_text(void **state) {
  (void)state;
  const char *bad[] = {
      "", "ip4/1.2.3.4", "/", "/ip4", "/ip4/", "/ip4/1.2.3", "/ip4/1.2.3.4.5", "/ip4/256.1.1.1",
      "/tcp/65536", "/tcp/-1", "/tcp/1x", "/ip6/1::2::3", "/nope/1", "/ip4/1.2.3.4//tcp/1",
      "/p2p/12D3KooW", "/p2p/QmNotAPeerId", "/dns4/", "/ipcidr/256", "/p2p-circuit/x",
      "/http-path/%zz", "/http-path/%4",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    multiaddr ma;
    assert_int_not_equal(multiaddr_parse(bad[i], &ma), 0);
  }
}

static void test_multiaddr_rejects_malformed_binary(void **state) {
  (void)state;
  multiaddr ma;
  const uint8_t trunc_ip4[] = {0x04, 0x7f, 0x00, 0x00};
  const uint8_t trunc_len[] = {0x36, 0x0b, 'a'};
  const uint8_t unknown[] = {0xff, 0x7f};
  const uint8_t noncanon[] = {0x84, 0x00, 1, 2, 3, 4};
  const uint8_t bad_p2p[] = {0xa5, 0x03, 0x02, 0x12, 0x00};
  const uint8_t slash_dns[] = {0x36, 0x03, 'a', '/', 'b'};
  assert_int_equal(multiaddr_from_bytes(trunc_ip4, sizeof trunc_ip4, &ma), -EINVAL);
  assert_int_equal(multiaddr_from_bytes(trunc_len, sizeof trunc_len, &ma), -EINVAL);
  assert_int_equal(multiaddr_from_bytes(unknown, sizeof unknown, &ma), -EINVAL);
  assert_int_equal(multiaddr_from_bytes(noncanon, sizeof noncanon, &ma), -EINVAL);
  assert_int_equal(multiaddr_from_bytes(bad_p2p, sizeof bad_p2p, &ma), -EINVAL);
  assert_int_equal(multiaddr_from_bytes(slash_dns, sizeof slash_dns, &ma), -EINVAL);
  assert_int_equal(multiaddr_from_bytes(NULL, 0, &ma), -EINVAL); /* empty (found by fuzz_identify) */
  static uint8_t big[MULTIADDR_MAX_BYTES + 1];
  assert_int_equal(multiaddr_from_bytes(big, sizeof big, &ma), -E2BIG);
}

static void test_multiaddr_sockaddr_conversion(void **state) {
  (void)state;
  multiaddr ma, back;
  struct sockaddr_storage ss;
  socklen_t sl;
  char s[MULTIADDR_STR_MAX];
  assert_int_equal(multiaddr_parse("/ip4/127.0.0.1/tcp/9710/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq", &ma), 0);
  assert_int_equal(multiaddr_to_sockaddr(&ma, &ss, &sl), 0);
  assert_int_equal(ss.ss_family, AF_INET);
  assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9710);
  assert_int_equal(multiaddr_from_sockaddr((struct sockaddr *)&ss, &back), 0);
  assert_int_equal(multiaddr_to_string(&back, s, sizeof s), 0);
  assert_string_equal(s, "/ip4/127.0.0.1/tcp/9710");
  assert_int_equal(multiaddr_parse("/ip6/::1/tcp/1", &ma), 0);
  assert_int_equal(multiaddr_to_sockaddr(&ma, &ss, &sl), 0);
  assert_int_equal(ss.ss_family, AF_INET6);
  assert_int_equal(multiaddr_parse("/ip4/127.0.0.1/udp/1", &ma), 0);
  assert_int_equal(multiaddr_to_sockaddr(&ma, &ss, &sl), -EAFNOSUPPORT);
  assert_int_equal(multiaddr_parse("/dns4/localhost/tcp/1", &ma), 0);
  assert_int_equal(multiaddr_to_sockaddr(&ma, &ss, &sl), -EAFNOSUPPORT);
}

static void test_multiaddr_to_string_respects_capacity(void **state) {
  (void)state;
  multiaddr ma;
  char s[10];
  assert_int_equal(multiaddr_parse("/ip4/127.0.0.1/tcp/4001", &ma), 0);
  assert_int_equal(multiaddr_to_string(&ma, s, sizeof s), -ENOSPC);
}

static void test_multiaddr_iterates_components(void **state) {
  (void)state;
  multiaddr ma;
  assert_int_equal(multiaddr_parse("/ip4/1.2.3.4/tcp/80/ws", &ma), 0);
  size_t off = 0;
  multiaddr_component c;
  uint32_t codes[4];
  int n = 0, rc;
  while ((rc = multiaddr_next(&ma, &off, &c)) == 1 && n < 4) codes[n++] = c.code;
  assert_int_equal(rc, 0);
  assert_int_equal(n, 3);
  assert_int_equal(codes[0], MA_IP4);
  assert_int_equal(codes[1], MA_TCP);
  assert_int_equal(codes[2], MA_WS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_multiaddr_matches_js_encodings),
      cmocka_unit_test(test_multiaddr_p2p_accepts_cid_form_and_prints_base58),
      cmocka_unit_test(test_multiaddr_other_protocols_roundtrip),
      cmocka_unit_test(test_multiaddr_unix_forms),
      cmocka_unit_test(test_multiaddr_rejects_malformed_text),
      cmocka_unit_test(test_multiaddr_rejects_malformed_binary),
      cmocka_unit_test(test_multiaddr_sockaddr_conversion),
      cmocka_unit_test(test_multiaddr_to_string_respects_capacity),
      cmocka_unit_test(test_multiaddr_iterates_components),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
