/* kad_record.c — DHT record validators and the Python rendezvous records. See kad_record.h. */
#include "p2p/proto/kad_record.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "p2p/core/keys.h"
#include "util/alloc.h"

/* The namespace of "/<ns>/<rest>": *ns, *ns_len; false if the key has no such shape (js and
 * go need at least "/x/…"). */
static bool key_namespace(const uint8_t *key, size_t len, const uint8_t **ns, size_t *ns_len) {
  if (len < 3 || key[0] != '/') return false;
  const uint8_t *slash = memchr(key + 1, '/', len - 1);
  if (!slash || slash == key + 1) return false;
  *ns = key + 1;
  *ns_len = (size_t)(slash - (key + 1));
  return true;
}

static bool ns_is(const uint8_t *ns, size_t n, const char *name) {
  return n == strlen(name) && memcmp(ns, name, n) == 0;
}

bool kad_rendezvous_ns_valid(const char *ns) {
  size_t n = strnlen(ns, KAD_NS_MAX + 1);
  if (n == 0 || n > KAD_NS_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)ns[i];
    if (c < 0x21 || c == 0x7f || c == '/') return false;
  }
  return true;
}

static int validate_pk(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len) {
  /* "/pk/" ‖ multihash */
  if (key_len < 5) return -EINVAL;
  peerid want;
  if (peerid_from_bytes(key + 4, key_len - 4, &want)) return -EINVAL;
  keys_public pk;
  if (keys_public_decode(value, value_len, &pk)) return -EINVAL;
  return peerid_matches_public(&want, &pk) ? 0 : -EINVAL;
}

int kad_rendezvous_record_parse(const uint8_t *value, size_t len, kad_rendezvous_record *out) {
  memset(out, 0, sizeof *out);
  if (len == 0 || len > KAD_RENDEZVOUS_MAX_VALUE) return -EINVAL;
  json_error_t err;
  bool oom = false;
  json_t *j = alloc_json_loadb((const char *)value, len, JSON_REJECT_DUPLICATES, &err, &oom);
  if (oom) {
    json_decref(j);
    return -ENOMEM;
  }
  if (!j) return -EINVAL;
  int rc = -EINVAL;
  json_t *pid = json_object_get(j, "peer_id");
  json_t *ma = json_object_get(j, "multiaddr");
  json_t *ts = json_object_get(j, "ts");
  if (!json_is_object(j) || !json_is_string(pid) || !json_is_string(ma) || !json_is_number(ts)) goto out;
  const char *ps = json_string_value(pid);
  if (peerid_parse(ps, json_string_length(pid), &out->id) ||
      peerid_to_string(&out->id, out->peer_id, sizeof out->peer_id))
    goto out;
  if (strlen(json_string_value(ma)) != json_string_length(ma) ||
      multiaddr_parse(json_string_value(ma), &out->addr))
    goto out;
  peerid in_addr;
  if (multiaddr_get_peerid(&out->addr, &in_addr) == 0 && !peerid_equal(&in_addr, &out->id)) goto out;
  out->ts = json_number_value(ts);
  if (!isfinite(out->ts)) goto out;
  rc = 0;
out:
  json_decref(j);
  return rc;
}

static int validate_rendezvous(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                               const peerid *from) {
  size_t pl = strlen(KAD_RENDEZVOUS_PREFIX);
  if (key_len <= pl || memcmp(key, KAD_RENDEZVOUS_PREFIX, pl) != 0) return -EINVAL;
  char ns[KAD_NS_MAX + 1];
  size_t nl = key_len - pl;
  if (nl > KAD_NS_MAX || memchr(key + pl, 0, nl)) return -EINVAL;
  memcpy(ns, key + pl, nl);
  ns[nl] = 0;
  if (!kad_rendezvous_ns_valid(ns)) return -EINVAL;
  kad_rendezvous_record r;
  int rc = kad_rendezvous_record_parse(value, value_len, &r);
  if (rc) return rc == -ENOMEM ? rc : -EINVAL;
  if (from && !peerid_equal(from, &r.id)) return -EPERM;
  return 0;
}

int kad_record_validate(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                        const peerid *from) {
  const uint8_t *ns;
  size_t nl;
  if (!key_namespace(key, key_len, &ns, &nl)) return -ENOTSUP;
  if (ns_is(ns, nl, "pk")) return validate_pk(key, key_len, value, value_len);
  if (ns_is(ns, nl, "ipfs-accelerate")) return validate_rendezvous(key, key_len, value, value_len, from);
  return -ENOTSUP;
}

int kad_record_select(const uint8_t *key, size_t key_len, const uint8_t *a, size_t a_len, const uint8_t *b,
                      size_t b_len) {
  const uint8_t *ns;
  size_t nl;
  if (!key_namespace(key, key_len, &ns, &nl) || !ns_is(ns, nl, "ipfs-accelerate")) return 0;
  kad_rendezvous_record ra, rb;
  bool va = kad_rendezvous_record_parse(a, a_len, &ra) == 0;
  bool vb = kad_rendezvous_record_parse(b, b_len, &rb) == 0;
  if (!vb) return 0;
  if (!va) return 1;
  return rb.ts > ra.ts ? 1 : 0;
}

int kad_rendezvous_record_key(const char *ns, char *out, size_t cap) {
  if (!kad_rendezvous_ns_valid(ns)) return -EINVAL;
  int n = snprintf(out, cap, "%s%s", KAD_RENDEZVOUS_PREFIX, ns);
  if (n < 0 || (size_t)n >= cap) return -ENOSPC;
  return n;
}

void kad_rendezvous_provider_key(const char *ns, uint8_t out[KAD_PROVIDER_KEY_LEN]) {
  out[0] = 0x12;
  out[1] = 0x20;
  crypto_hash_sha256(out + 2, (const uint8_t *)ns, strlen(ns));
}

int kad_rendezvous_record_make(const char *peer_id, const char *multiaddr_text, double ts, char *out, size_t cap) {
  /* Both strings are validated first, so they need no JSON escaping (PeerIds are base58 or
   * base32, multiaddr text of the kinds we parse has no '"' or '\\'). */
  peerid id;
  multiaddr ma;
  if (peerid_parse(peer_id, strlen(peer_id), &id) || multiaddr_parse(multiaddr_text, &ma) || !isfinite(ts))
    return -EINVAL;
  for (const char *p = multiaddr_text; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == '"' || *p == '\\') return -EINVAL;
  int n = snprintf(out, cap, "{\"peer_id\": \"%s\", \"multiaddr\": \"%s\", \"ts\": %.6f}", peer_id,
                   multiaddr_text, ts);
  if (n < 0 || (size_t)n >= cap) return -ENOSPC;
  return n;
}
