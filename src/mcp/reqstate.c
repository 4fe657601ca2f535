/* reqstate.c — sealed requestState for multi round-trip requests (see reqstate.h). */
#include "mcp/reqstate.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

static const char k_domain[] = "peermcp-requestState-v1";

static unsigned char g_key[crypto_auth_hmacsha256_KEYBYTES];
static bool g_key_ok;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void key_init(void) {
  if (sodium_init() < 0) {
    log_error("reqstate: sodium_init failed; requestState is disabled", NULL);
    return;
  }
  crypto_auth_hmacsha256_keygen(g_key);
  g_key_ok = true;
}

static void hex(const unsigned char *b, size_t n, char *out) {
  static const char d[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = d[b[i] >> 4];
    out[2 * i + 1] = d[b[i] & 15];
  }
  out[2 * n] = 0;
}

int mcp_reqstate_binding(const char *method, const char *name, const char *owner, const json_t *args,
                         char out[MCP_REQSTATE_BINDING_LEN + 1]) {
  char *a = args ? json_dumps(args, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
  if (args && !a) return -ENOMEM;
  crypto_hash_sha256_state st;
  crypto_hash_sha256_init(&st);
  const char *parts[4] = {method ? method : "", name ? name : "", owner ? owner : "", a ? a : ""};
  for (int i = 0; i < 4; i++) {
    /* length-prefixed, so ("a","bc") and ("ab","c") differ */
    uint64_t n = strlen(parts[i]);
    unsigned char len[8];
    for (int k = 0; k < 8; k++) len[k] = (unsigned char)(n >> (8 * k));
    crypto_hash_sha256_update(&st, len, sizeof len);
    crypto_hash_sha256_update(&st, (const unsigned char *)parts[i], n);
  }
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256_final(&st, h);
  free(a);
  hex(h, sizeof h, out);
  return 0;
}

static void tag_of(const char *binding, const unsigned char *payload, size_t n,
                   unsigned char tag[crypto_auth_hmacsha256_BYTES]) {
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, g_key, sizeof g_key);
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)k_domain, sizeof k_domain); /* with the NUL */
  crypto_auth_hmacsha256_update(&st, (const unsigned char *)binding, strlen(binding) + 1);
  crypto_auth_hmacsha256_update(&st, payload, n);
  crypto_auth_hmacsha256_final(&st, tag);
}

char *mcp_reqstate_seal(const json_t *answers, const char *binding, int64_t now_ms, int *err) {
  int e = 0;
  char *payload = NULL, *out = NULL;
  pthread_once(&g_once, key_init);
  if (!g_key_ok || !binding) {
    e = -EIO;
    goto done;
  }
  json_t *r = answers ? json_incref((json_t *)answers) : json_object();
  json_t *p = json_pack("{s:i, s:I, s:o}", "v", 1, "exp", (json_int_t)(now_ms + MCP_REQSTATE_TTL_MS), "r", r);
  payload = p ? json_dumps(p, JSON_COMPACT) : NULL;
  json_decref(p);
  if (!payload) {
    e = -ENOMEM;
    goto done;
  }
  size_t n = strlen(payload);
  size_t b64p = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  size_t b64t = sodium_base64_ENCODED_LEN(crypto_auth_hmacsha256_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  if (b64p + b64t > MCP_REQSTATE_MAX_BYTES) {
    e = -E2BIG;
    goto done;
  }
  out = malloc(b64p + b64t);
  if (!out) {
    e = -ENOMEM;
    goto done;
  }
  unsigned char tag[crypto_auth_hmacsha256_BYTES];
  tag_of(binding, (const unsigned char *)payload, n, tag);
  sodium_bin2base64(out, b64p, (const unsigned char *)payload, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  size_t at = strlen(out);
  out[at++] = '.';
  sodium_bin2base64(out + at, b64t, tag, sizeof tag, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
done:
  free(payload);
  if (err) *err = e;
  return out;
}

int mcp_reqstate_open(const char *state, const char *binding, int64_t now_ms, json_t **answers) {
  *answers = NULL;
  if (!state || !binding) return -EBADMSG;
  size_t len = strnlen(state, MCP_REQSTATE_MAX_BYTES + 1);
  if (len > MCP_REQSTATE_MAX_BYTES) return -E2BIG;
  pthread_once(&g_once, key_init);
  if (!g_key_ok) return -EBADMSG;
  const char *dot = memchr(state, '.', len);
  if (!dot) return -EBADMSG;
  size_t plen = (size_t)(dot - state), tlen = len - plen - 1;
  unsigned char *payload = malloc(plen + 1);
  if (!payload) return -ENOMEM;
  size_t n = 0;
  unsigned char tag[crypto_auth_hmacsha256_BYTES], want[crypto_auth_hmacsha256_BYTES];
  size_t tn = 0;
  const char *end = NULL;
  int rc = -EBADMSG;
  if (sodium_base642bin(payload, plen + 1, state, plen, NULL, &n, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != dot)
    goto out;
  if (sodium_base642bin(tag, sizeof tag, dot + 1, tlen, NULL, &tn, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != state + len || tn != sizeof tag)
    goto out;
  tag_of(binding, payload, n, want);
  if (sodium_memcmp(tag, want, sizeof tag) != 0) goto out;
  json_t *p = json_loadb((const char *)payload, n, 0, NULL);
  json_t *exp = json_object_get(p, "exp"), *r = json_object_get(p, "r");
  if (!json_is_object(p) || json_integer_value(json_object_get(p, "v")) != 1 || !json_is_integer(exp) ||
      !json_is_object(r)) {
    json_decref(p);
    goto out; /* cannot happen with our own tag, unless the key leaked: refuse anyway */
  }
  if (now_ms > json_integer_value(exp)) {
    json_decref(p);
    rc = -ETIMEDOUT;
    goto out;
  }
  *answers = json_incref(r);
  json_decref(p);
  rc = 0;
out:
  free(payload);
  return rc;
}
