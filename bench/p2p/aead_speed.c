/* aead_speed.c — ChaCha20-Poly1305 (IETF) on this CPU, with both backends the Noise transport
 * can use (p2p.noise_aead: OpenSSL, the default, and libsodium), called the way
 * src/p2p/proto/noise.c calls them (OpenSSL: a context keyed once, the nonce set per message
 * through OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED when that gives the same bytes as
 * EVP_EncryptInit_ex — checked here on one message, as noise.c checks it — else with
 * EVP_EncryptInit_ex, then Update, Final, the tag read through OSSL_CIPHER_PARAM_AEAD_TAG;
 * libsodium: crypto_aead_chacha20poly1305_ietf_encrypt).
 *
 *   aead_speed [SECONDS]   Noise-sized messages (65519 bytes of plaintext + 16-byte tag), SECONDS
 *                          (default 1) per backend: the ceiling for one Noise stream direction.
 *                          One line per backend: {"aead":"chacha20poly1305-ietf","backend":…,
 *                          "msg_bytes":65519,"secs":…,"mbps":…,"mib_s":…}
 *   aead_speed --sweep [BYTES…]  the cost of one message by size (64 B … 65519 B, or the sizes
 *                          given, each 1…65519), both backends, the best of 5 rounds:
 *                          {"backend":…,"msg_bytes":…,"us_per_msg":…} — the fixed part is what
 *                          every small message (one call at a time) pays; bench/p2p/call.sh
 *                          asks for the sizes of a 16-call batch's two Noise messages. */
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MSG_MAX 65519

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct aead {
  const char *name;
  EVP_CIPHER_CTX *evp; /* NULL: libsodium */
  int nonce_param;     /* the nonce through OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED (noise.c) */
  unsigned char key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
} aead;

static int seal(aead *a, const unsigned char nonce[12], const unsigned char *in, size_t n, unsigned char *out) {
  if (!a->evp) {
    unsigned long long clen;
    return crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, in, n, NULL, 0, NULL, nonce, a->key);
  }
  int l1 = 0, l2 = 0;
  OSSL_PARAM iv[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED, (void *)nonce, 12),
                      OSSL_PARAM_construct_end()};
  if ((a->nonce_param ? EVP_CIPHER_CTX_set_params(a->evp, iv) : EVP_EncryptInit_ex(a->evp, NULL, NULL, NULL, nonce)) != 1 ||
      EVP_EncryptUpdate(a->evp, out, &l1, in, (int)n) != 1 ||
      EVP_EncryptFinal_ex(a->evp, out + l1, &l2) != 1)
    return -1;
  OSSL_PARAM tag[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, out + n, 16),
                       OSSL_PARAM_construct_end()};
  return EVP_CIPHER_CTX_get_params(a->evp, tag) == 1 ? 0 : -1;
}

int main(int argc, char **argv) {
  if (sodium_init() < 0) return 1;
  int sweep = argc > 1 && strcmp(argv[1], "--sweep") == 0;
  double secs_target = argc > 1 && !sweep ? atof(argv[1]) : 1.0;
  if (secs_target <= 0 || secs_target > 600) secs_target = 1.0;
  unsigned char nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES] = {0};
  unsigned char *in = calloc(1, MSG_MAX), *out = malloc(MSG_MAX + 16);
  aead backends[2] = {{.name = "openssl"}, {.name = "libsodium"}};
  for (int b = 0; b < 2; b++) randombytes_buf(backends[b].key, sizeof backends[b].key);
  backends[0].evp = EVP_CIPHER_CTX_new();
  if (!in || !out || !backends[0].evp ||
      EVP_EncryptInit_ex(backends[0].evp, EVP_chacha20_poly1305(), NULL, backends[0].key, NULL) != 1)
    return 1;
  /* noise.c's nonce path when it agrees with the init path here (one 256-byte message, twice) */
  {
    unsigned char c1[256 + 16], c2[256 + 16];
    nonce[11] = 1;
    int same = seal(&backends[0], nonce, in, 256, c1) == 0;
    backends[0].nonce_param = 1;
    same = same && seal(&backends[0], nonce, in, 256, c2) == 0 && memcmp(c1, c2, sizeof c1) == 0;
    backends[0].nonce_param = same;
    nonce[11] = 0;
  }
  int rc = 0;
  if (!sweep) {
    for (int b = 0; b < 2 && rc == 0; b++) {
      unsigned long long n = 0;
      double t0 = now_s(), t;
      do {
        for (int i = 0; i < 64; i++) {
          nonce[4] = (unsigned char)n, nonce[5] = (unsigned char)(n >> 8);
          if (seal(&backends[b], nonce, in, MSG_MAX, out) != 0) rc = 1;
          n++;
        }
        t = now_s() - t0;
      } while (t < secs_target);
      double bytes = (double)n * MSG_MAX;
      printf("{\"aead\":\"chacha20poly1305-ietf\",\"backend\":\"%s\",\"msg_bytes\":%d,\"secs\":%.3f,\"mbps\":%.1f,"
             "\"mib_s\":%.1f}\n",
             backends[b].name, MSG_MAX, t, bytes * 8 / t / 1e6, bytes / t / 1048576.0);
    }
  } else {
    size_t sizes[16] = {64, 256, 1024, 4096, 16384, MSG_MAX}, n_sizes = 6;
    if (argc > 2) {
      n_sizes = 0;
      for (int i = 2; i < argc && n_sizes < sizeof sizes / sizeof sizes[0]; i++) {
        long v = atol(argv[i]);
        if (v < 1 || v > MSG_MAX) return 2;
        sizes[n_sizes++] = (size_t)v;
      }
    }
    for (size_t si = 0; si < n_sizes && rc == 0; si++) {
      int iters = sizes[si] <= 4096 ? 50000 : 5000;
      for (int b = 0; b < 2; b++) {
        double best = 1e30;
        for (int r = 0; r < 5; r++) {
          double t0 = now_s();
          for (int i = 0; i < iters; i++) {
            nonce[4] = (unsigned char)i, nonce[5] = (unsigned char)(i >> 8);
            if (seal(&backends[b], nonce, in, sizes[si], out) != 0) rc = 1;
          }
          double per = (now_s() - t0) / iters;
          if (per < best) best = per;
        }
        printf("{\"backend\":\"%s\",\"msg_bytes\":%zu,\"us_per_msg\":%.3f%s}\n", backends[b].name, sizes[si], best * 1e6,
               !backends[b].evp ? "" : backends[b].nonce_param ? ",\"nonce\":\"param\"" : ",\"nonce\":\"init\"");
      }
    }
  }
  EVP_CIPHER_CTX_free(backends[0].evp);
  free(in);
  free(out);
  return rc;
}
