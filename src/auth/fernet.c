/* fernet.c — Fernet with OpenSSL (see fernet.h). */
#include "auth/fernet.h"

#include <errno.h>
#include <stdbool.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define F_VERSION 0x80
#define F_HDR (1 + 8 + 16) /* version, timestamp, IV */
#define F_MAC 32
#define F_MAX_SKEW 60

int auth_fernet_key_parse(const char *b64, auth_fernet_key *out) {
  unsigned char raw[33];
  size_t n = 0;
  const char *end = NULL;
  if (!b64 || sodium_base642bin(raw, sizeof raw, b64, strlen(b64), NULL, &n, &end, sodium_base64_VARIANT_URLSAFE) != 0 ||
      *end || n != 32) {
    sodium_memzero(raw, sizeof raw);
    return -EINVAL;
  }
  memcpy(out->sign, raw, 16);
  memcpy(out->enc, raw + 16, 16);
  sodium_memzero(raw, sizeof raw);
  return 0;
}

void auth_fernet_key_derive(const char *secret, auth_fernet_key *out) {
  static const char label[] = "ipfs-accelerate-task-p2p-fernet-v1";
  unsigned char d[SHA256_DIGEST_LENGTH];
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  unsigned int dl = 0;
  if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, label, sizeof label - 1) != 1 ||
      (secret && EVP_DigestUpdate(c, secret, strlen(secret)) != 1) || EVP_DigestFinal_ex(c, d, &dl) != 1)
    randombytes_buf(d, sizeof d); /* OpenSSL out of memory: a key nobody shares, so nothing decrypts */
  EVP_MD_CTX_free(c);
  memcpy(out->sign, d, 16);
  memcpy(out->enc, d + 16, 16);
  OPENSSL_cleanse(d, sizeof d);
}

void auth_fernet_key_wipe(auth_fernet_key *k) { sodium_memzero(k, sizeof *k); }

static int mac_of(const auth_fernet_key *k, const unsigned char *data, size_t n, unsigned char out[F_MAC]) {
  unsigned int ml = 0;
  return HMAC(EVP_sha256(), k->sign, sizeof k->sign, data, n, out, &ml) && ml == F_MAC ? 0 : -1;
}

char *auth_fernet_encrypt(const auth_fernet_key *k, const void *plain, size_t n, uint64_t now, const unsigned char *iv) {
  if (n > AUTH_FERNET_MAX_TOKEN / 2) return NULL;
  size_t ct_cap = n + 16, total = F_HDR + ct_cap + F_MAC;
  unsigned char *b = malloc(total);
  if (!b) return NULL;
  b[0] = F_VERSION;
  for (int i = 0; i < 8; i++) b[1 + i] = (unsigned char)(now >> (56 - 8 * i));
  if (iv) memcpy(b + 9, iv, 16);
  else randombytes_buf(b + 9, 16);
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int l1 = 0, l2 = 0;
  bool ok = c && EVP_EncryptInit_ex(c, EVP_aes_128_cbc(), NULL, k->enc, b + 9) == 1 &&
            EVP_EncryptUpdate(c, b + F_HDR, &l1, plain, (int)n) == 1 && EVP_EncryptFinal_ex(c, b + F_HDR + l1, &l2) == 1;
  EVP_CIPHER_CTX_free(c);
  size_t body = F_HDR + (size_t)l1 + (size_t)l2;
  char *out = NULL;
  if (ok && mac_of(k, b, body, b + body) == 0) {
    size_t cap = sodium_base64_ENCODED_LEN(body + F_MAC, sodium_base64_VARIANT_URLSAFE);
    if ((out = malloc(cap))) sodium_bin2base64(out, cap, b, body + F_MAC, sodium_base64_VARIANT_URLSAFE);
  }
  sodium_memzero(b, total);
  free(b);
  return out;
}

int auth_fernet_decrypt(const auth_fernet_key *k, const char *token, size_t len, uint64_t ttl_s, uint64_t now,
                        unsigned char **plain, size_t *n) {
  *plain = NULL;
  *n = 0;
  if (!token || len > AUTH_FERNET_MAX_TOKEN) return -E2BIG;
  size_t cap = len / 4 * 3 + 3, bl = 0;
  unsigned char *b = malloc(cap + 1);
  if (!b) return -ENOMEM;
  const char *end = NULL;
  int rc = -EINVAL;
  if (sodium_base642bin(b, cap, token, len, NULL, &bl, &end, sodium_base64_VARIANT_URLSAFE) != 0 || end != token + len ||
      bl < F_HDR + 16 + F_MAC || (bl - F_HDR - F_MAC) % 16 != 0 || b[0] != F_VERSION)
    goto out;
  unsigned char mac[F_MAC];
  if (mac_of(k, b, bl - F_MAC, mac) != 0 || CRYPTO_memcmp(mac, b + bl - F_MAC, F_MAC) != 0) goto out;
  uint64_t ts = 0;
  for (int i = 0; i < 8; i++) ts = ts << 8 | b[1 + i];
  if (ttl_s && (ts + ttl_s < now || now + F_MAX_SKEW < ts)) {
    rc = -ETIME;
    goto out;
  }
  size_t ctl = bl - F_HDR - F_MAC;
  unsigned char *p = malloc(ctl + 1);
  if (!p) {
    rc = -ENOMEM;
    goto out;
  }
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int l1 = 0, l2 = 0;
  bool ok = c && EVP_DecryptInit_ex(c, EVP_aes_128_cbc(), NULL, k->enc, b + 9) == 1 &&
            EVP_DecryptUpdate(c, p, &l1, b + F_HDR, (int)ctl) == 1 && EVP_DecryptFinal_ex(c, p + l1, &l2) == 1;
  EVP_CIPHER_CTX_free(c);
  if (!ok) { /* bad padding under a good MAC: the key's owner made it so; still refused */
    sodium_memzero(p, ctl + 1);
    free(p);
    goto out;
  }
  p[l1 + l2] = 0;
  *plain = p;
  *n = (size_t)(l1 + l2);
  rc = 0;
out:
  sodium_memzero(b, cap + 1);
  free(b);
  return rc;
}

json_t *auth_fernet_wrap(const auth_fernet_key *k, const char *text) {
  char *t = text ? auth_fernet_encrypt(k, text, strlen(text), (uint64_t)time(NULL), NULL) : NULL;
  json_t *w = t ? json_pack("{s:s, s:s}", "enc", AUTH_FERNET_WRAPPER, "ct", t) : NULL;
  free(t);
  return w;
}

bool auth_fernet_is_wrapped(const json_t *v) {
  const json_t *e = json_object_get(v, "enc");
  return json_is_string(e) && strcmp(json_string_value(e), AUTH_FERNET_WRAPPER) == 0 &&
         json_is_string(json_object_get(v, "ct"));
}

char *auth_fernet_unwrap(const auth_fernet_key *k, const json_t *w) {
  if (!auth_fernet_is_wrapped(w)) return NULL;
  const json_t *ct = json_object_get(w, "ct");
  unsigned char *p = NULL;
  size_t n = 0;
  if (auth_fernet_decrypt(k, json_string_value(ct), json_string_length(ct), 0, 0, &p, &n) != 0) return NULL;
  if (memchr(p, 0, n)) { /* decrypt_text decodes UTF-8 text: no embedded NUL here */
    free(p);
    return NULL;
  }
  return (char *)p;
}

json_t *auth_fernet_wrap_json(const auth_fernet_key *k, const json_t *value) {
  char *t = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
  json_t *w = t ? auth_fernet_wrap(k, t) : NULL;
  if (t) sodium_memzero(t, strlen(t));
  free(t);
  return w;
}

json_t *auth_fernet_unwrap_json(const auth_fernet_key *k, const json_t *wrapper) {
  char *t = auth_fernet_unwrap(k, wrapper);
  if (!t) return NULL;
  json_t *v = json_loads(t, JSON_DECODE_ANY, NULL);
  sodium_memzero(t, strlen(t));
  free(t);
  return v;
}

json_t *auth_fernet_payload_prompt(const auth_fernet_key *k, const json_t *payload, bool *failed) {
  *failed = false;
  const json_t *enc = json_object_get(payload, "prompt_enc");
  if (!auth_fernet_is_wrapped(enc)) return NULL;
  char *text = auth_fernet_unwrap(k, enc);
  json_t *out = text ? json_deep_copy(payload) : NULL;
  if (out) {
    json_object_del(out, "prompt_enc");
    json_object_set_new(out, "prompt", json_string(text));
  }
  if (text) {
    sodium_memzero(text, strlen(text));
    free(text);
  }
  if (!out) *failed = true;
  return out;
}
