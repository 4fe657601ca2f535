/* envelope_tool.c — a command-line face of p2p/core/envelope for tests/suites/47-nat.sh, which
 * checks it against js-libp2p (tests/interop/nat/envelope_check.mjs):
 *   envelope_tool seal SEED_HEX SEQ ADDR...   our peer record signed with the Ed25519 key of
 *                                            that 32-byte seed: prints the envelope hex
 *   envelope_tool open HEX                   opens a peer record envelope: prints
 *                                            "ok PEERID SEQ ADDR..." or "error RC"
 * Exit status 0 on success, 1 otherwise. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hexutil.h"
#include "p2p/core/envelope.h"

static int seal(int argc, char **argv) {
  if (argc < 4 || strlen(argv[2]) != 64) return 1;
  uint8_t seed[32];
  if (hex_decode(argv[2], seed, sizeof seed) != 32) return 1;
  keys_private k;
  if (keys_ed25519_from_seed(seed, &k)) return 1;
  size_t n = (size_t)argc - 4;
  if (n > PEER_RECORD_MAX_ADDRS) return 1;
  multiaddr addrs[PEER_RECORD_MAX_ADDRS];
  for (size_t i = 0; i < n; i++)
    if (multiaddr_parse(argv[4 + i], &addrs[i])) {
      fprintf(stderr, "bad multiaddr %s\n", argv[4 + i]);
      return 1;
    }
  buf out;
  buf_init(&out, ENVELOPE_MAX_BYTES);
  int rc = peer_record_seal(&k, strtoull(argv[3], NULL, 10), addrs, n, &out);
  if (rc == 0) {
    for (size_t i = 0; i < buf_len(&out); i++) printf("%02x", buf_ptr(&out)[i]);
    printf("\n");
  } else {
    printf("error %d\n", rc);
  }
  buf_free(&out);
  return rc ? 1 : 0;
}

static int open_(const char *hex) {
  size_t cap = strlen(hex) / 2 + 1;
  uint8_t *b = malloc(cap);
  if (!b) return 1;
  size_t n = hex_decode(hex, b, cap);
  peer_record r;
  int rc = peer_record_open(b, n, &r);
  free(b);
  if (rc) {
    printf("error %d\n", rc);
    return 1;
  }
  char id[PEERID_STR_MAX], a[MULTIADDR_STR_MAX];
  if (peerid_to_string(&r.id, id, sizeof id)) id[0] = 0;
  printf("ok %s %llu", id, (unsigned long long)r.seq);
  for (size_t i = 0; i < r.n_addrs; i++)
    if (multiaddr_to_string(&r.addrs[i], a, sizeof a) == 0) printf(" %s", a);
  printf("\n");
  peer_record_clear(&r);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "seal") == 0) return seal(argc, argv);
  if (argc == 3 && strcmp(argv[1], "open") == 0) return open_(argv[2]);
  fprintf(stderr, "usage: envelope_tool seal SEED_HEX SEQ ADDR... | open HEX\n");
  return 2;
}
