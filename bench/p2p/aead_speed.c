/* aead_speed.c — libsodium's raw ChaCha20-Poly1305 (IETF) encryption speed on this CPU, with
 * Noise-sized messages (65519 bytes of plaintext + 16-byte tag): the ceiling for one Noise
 * stream direction. Prints {"aead":"chacha20poly1305-ietf","msg_bytes":…,"mbps":…,"mib_s":…}. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (sodium_init() < 0) return 1;
  size_t msg = 65519;
  double secs_target = argc > 1 ? atof(argv[1]) : 1.0;
  unsigned char key[crypto_aead_chacha20poly1305_ietf_KEYBYTES], nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES] = {0};
  randombytes_buf(key, sizeof key);
  unsigned char *in = calloc(1, msg), *out = malloc(msg + 16);
  if (!in || !out) return 1;
  unsigned long long clen, n = 0;
  double t0 = now_s(), t;
  do {
    for (int i = 0; i < 64; i++) {
      nonce[4] = (unsigned char)n;
      crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, in, msg, NULL, 0, NULL, nonce, key);
      n++;
    }
    t = now_s() - t0;
  } while (t < secs_target);
  double bytes = (double)n * msg;
  printf("{\"aead\":\"chacha20poly1305-ietf\",\"msg_bytes\":%zu,\"secs\":%.3f,\"mbps\":%.1f,\"mib_s\":%.1f}\n", msg, t,
         bytes * 8 / t / 1e6, bytes / t / 1048576.0);
  free(in);
  free(out);
  return 0;
}
