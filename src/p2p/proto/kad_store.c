/* kad_store.c — bounded DHT record and provider store. See kad_store.h. */
#include "p2p/proto/kad_store.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/kad_msg.h"

#define HOUR_MS (3600ull * 1000ull)

/* A provider entry keeps its addresses packed (u16 length ‖ bytes …) to stay small. */
typedef struct prov {
  peerid id;
  uint8_t *addrs;
  size_t addrs_len;
  uint64_t expires_ms, addrs_expire_ms, added_ms;
} prov;

typedef struct pkey {
  uint8_t *key;
  size_t key_len;
  prov *p;
  size_t n, cap;
} pkey;

struct kad_store {
  kad_store_config cfg;
  kad_stored_record *r;
  size_t nr, rcap;
  size_t record_bytes;
  pkey *k;
  size_t nk, kcap;
  size_t nprov;
  uint64_t refused_full, refused_quota, expired;
};

int kad_store_new(const kad_store_config *cfg, kad_store **out) {
  *out = NULL;
  kad_store *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  if (cfg) s->cfg = *cfg;
  kad_store_config *c = &s->cfg;
  if (!c->max_records) c->max_records = 1024;
  if (!c->max_record_bytes) c->max_record_bytes = 4u << 20;
  if (!c->max_records_per_peer) c->max_records_per_peer = 64;
  if (!c->record_ttl_ms) c->record_ttl_ms = 48 * HOUR_MS;
  if (!c->max_providers) c->max_providers = 8192;
  if (!c->max_providers_per_key) c->max_providers_per_key = 256;
  if (!c->max_keys_per_provider) c->max_keys_per_provider = 256;
  if (!c->provider_ttl_ms) c->provider_ttl_ms = 48 * HOUR_MS;
  if (!c->provider_addr_ttl_ms) c->provider_addr_ttl_ms = HOUR_MS / 2;
  *out = s;
  return 0;
}

static void free_pkey(pkey *k) {
  for (size_t i = 0; i < k->n; i++) free(k->p[i].addrs);
  free(k->p);
  free(k->key);
}

void kad_store_free(kad_store *s) {
  if (!s) return;
  for (size_t i = 0; i < s->nr; i++) {
    free(s->r[i].key);
    free(s->r[i].value);
  }
  free(s->r);
  for (size_t i = 0; i < s->nk; i++) free_pkey(&s->k[i]);
  free(s->k);
  free(s);
}

/* ---- records ---- */

static void drop_record(kad_store *s, size_t i) {
  s->record_bytes -= s->r[i].key_len + s->r[i].value_len;
  free(s->r[i].key);
  free(s->r[i].value);
  s->r[i] = s->r[--s->nr];
}

static long find_record(const kad_store *s, const uint8_t *key, size_t key_len) {
  for (size_t i = 0; i < s->nr; i++)
    if (s->r[i].key_len == key_len && memcmp(s->r[i].key, key, key_len) == 0) return (long)i;
  return -1;
}

static void expire_records(kad_store *s, uint64_t now_ms) {
  for (size_t i = s->nr; i-- > 0;)
    if (now_ms >= s->r[i].stored_ms + s->cfg.record_ttl_ms) {
      drop_record(s, i);
      s->expired++;
    }
}

int kad_store_put_record(kad_store *s, const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                         const peerid *from, uint64_t now_ms, double now_wall_s) {
  if (key_len == 0 || key_len > KAD_MAX_KEY || value_len > KAD_MAX_VALUE) return -E2BIG;
  long at = find_record(s, key, key_len);
  size_t old_bytes = at >= 0 ? s->r[at].key_len + s->r[at].value_len : 0;
  size_t by_peer = 0;
  for (size_t i = 0; i < s->nr; i++)
    if ((long)i != at && peerid_equal(&s->r[i].from, from)) by_peer++;
  if (by_peer >= s->cfg.max_records_per_peer) {
    s->refused_quota++;
    return -EDQUOT;
  }
  if ((at < 0 && s->nr >= s->cfg.max_records) ||
      s->record_bytes - old_bytes + key_len + value_len > s->cfg.max_record_bytes) {
    expire_records(s, now_ms);
    at = find_record(s, key, key_len);
    old_bytes = at >= 0 ? s->r[at].key_len + s->r[at].value_len : 0;
    if ((at < 0 && s->nr >= s->cfg.max_records) ||
        s->record_bytes - old_bytes + key_len + value_len > s->cfg.max_record_bytes) {
      s->refused_full++;
      return -ENOSPC;
    }
  }
  uint8_t *v = malloc(value_len ? value_len : 1);
  if (!v) return -ENOMEM;
  if (value_len) memcpy(v, value, value_len);
  if (at < 0) {
    if (s->nr == s->rcap) {
      size_t nc = s->rcap ? s->rcap * 2 : 16;
      if (nc > s->cfg.max_records) nc = s->cfg.max_records;
      kad_stored_record *nr = realloc(s->r, nc * sizeof *nr);
      if (!nr) {
        free(v);
        return -ENOMEM;
      }
      s->r = nr;
      s->rcap = nc;
    }
    uint8_t *k = malloc(key_len);
    if (!k) {
      free(v);
      return -ENOMEM;
    }
    memcpy(k, key, key_len);
    at = (long)s->nr++;
    memset(&s->r[at], 0, sizeof s->r[at]);
    s->r[at].key = k;
    s->r[at].key_len = key_len;
    s->record_bytes += key_len;
  } else {
    s->record_bytes -= s->r[at].value_len;
    free(s->r[at].value);
  }
  kad_stored_record *r = &s->r[at];
  r->value = v;
  r->value_len = value_len;
  s->record_bytes += value_len;
  r->from = *from;
  r->stored_ms = now_ms;
  r->stored_wall_s = now_wall_s;
  assert(s->record_bytes <= s->cfg.max_record_bytes);
  return 0;
}

const kad_stored_record *kad_store_get_record(kad_store *s, const uint8_t *key, size_t key_len, uint64_t now_ms) {
  long at = find_record(s, key, key_len);
  if (at < 0) return NULL;
  if (now_ms >= s->r[at].stored_ms + s->cfg.record_ttl_ms) {
    drop_record(s, (size_t)at);
    s->expired++;
    return NULL;
  }
  return &s->r[at];
}

int kad_store_remove_record(kad_store *s, const uint8_t *key, size_t key_len) {
  long at = find_record(s, key, key_len);
  if (at < 0) return -ENOENT;
  drop_record(s, (size_t)at);
  return 0;
}

/* ---- providers ---- */

static long find_pkey(const kad_store *s, const uint8_t *key, size_t key_len) {
  for (size_t i = 0; i < s->nk; i++)
    if (s->k[i].key_len == key_len && memcmp(s->k[i].key, key, key_len) == 0) return (long)i;
  return -1;
}

static void drop_pkey(kad_store *s, size_t i) {
  free_pkey(&s->k[i]);
  s->k[i] = s->k[--s->nk];
}

static void expire_providers(kad_store *s, uint64_t now_ms) {
  for (size_t i = s->nk; i-- > 0;) {
    pkey *k = &s->k[i];
    for (size_t j = k->n; j-- > 0;) {
      if (now_ms >= k->p[j].expires_ms) {
        free(k->p[j].addrs);
        k->p[j] = k->p[--k->n];
        s->nprov--;
        s->expired++;
      }
    }
    if (k->n == 0) drop_pkey(s, i);
  }
}

static int pack_addrs(const multiaddr *addrs, size_t n, uint8_t **out, size_t *len) {
  *out = NULL;
  *len = 0;
  if (n > KAD_STORE_MAX_PROVIDER_ADDRS) n = KAD_STORE_MAX_PROVIDER_ADDRS;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += 2 + addrs[i].len;
  if (!total) return 0;
  uint8_t *p = malloc(total);
  if (!p) return -ENOMEM;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    multiaddr a;
    multiaddr_strip_p2p(&addrs[i], &a);
    p[o] = (uint8_t)(a.len >> 8);
    p[o + 1] = (uint8_t)a.len;
    memcpy(p + o + 2, a.bytes, a.len);
    o += 2 + a.len;
  }
  *out = p;
  *len = o;
  return 0;
}

static size_t unpack_addrs(const uint8_t *p, size_t len, multiaddr *out, size_t max) {
  size_t o = 0, n = 0;
  while (o + 2 <= len && n < max) {
    size_t l = (size_t)p[o] << 8 | p[o + 1];
    if (o + 2 + l > len) break;
    if (multiaddr_from_bytes(p + o + 2, l, &out[n]) == 0) n++;
    o += 2 + l;
  }
  return n;
}

static size_t keys_of_provider(const kad_store *s, const peerid *id) {
  size_t n = 0;
  for (size_t i = 0; i < s->nk; i++)
    for (size_t j = 0; j < s->k[i].n; j++)
      if (peerid_equal(&s->k[i].p[j].id, id)) n++;
  return n;
}

int kad_store_add_provider(kad_store *s, const uint8_t *key, size_t key_len, const peerid *provider,
                           const multiaddr *addrs, size_t n_addrs, uint64_t now_ms) {
  if (key_len == 0 || key_len > KAD_MAX_KEY) return -E2BIG;
  uint8_t *blob;
  size_t blob_len;
  int rc = pack_addrs(addrs, n_addrs, &blob, &blob_len);
  if (rc) return rc;
  long ki = find_pkey(s, key, key_len);
  if (ki >= 0) {
    pkey *k = &s->k[ki];
    for (size_t j = 0; j < k->n; j++) {
      if (!peerid_equal(&k->p[j].id, provider)) continue;
      prov *p = &k->p[j];
      p->expires_ms = now_ms + s->cfg.provider_ttl_ms;
      p->added_ms = now_ms;
      if (blob) {
        free(p->addrs);
        p->addrs = blob;
        p->addrs_len = blob_len;
        p->addrs_expire_ms = now_ms + s->cfg.provider_addr_ttl_ms;
      }
      return 0;
    }
  }
  /* A new entry: make room by expiry first, then check the bounds. */
  bool over = s->nprov >= s->cfg.max_providers ||
              (ki >= 0 && s->k[ki].n >= s->cfg.max_providers_per_key) ||
              keys_of_provider(s, provider) >= s->cfg.max_keys_per_provider;
  if (over) {
    expire_providers(s, now_ms);
    ki = find_pkey(s, key, key_len);
    if (s->nprov >= s->cfg.max_providers) {
      s->refused_full++;
      free(blob);
      return -ENOSPC;
    }
    if ((ki >= 0 && s->k[ki].n >= s->cfg.max_providers_per_key) ||
        keys_of_provider(s, provider) >= s->cfg.max_keys_per_provider) {
      s->refused_quota++;
      free(blob);
      return -EDQUOT;
    }
  }
  rc = -ENOMEM;
  if (ki < 0) {
    if (s->nk == s->kcap) {
      size_t nc = s->kcap ? s->kcap * 2 : 16;
      pkey *nk = realloc(s->k, nc * sizeof *nk);
      if (!nk) goto fail;
      s->k = nk;
      s->kcap = nc;
    }
    uint8_t *kb = malloc(key_len);
    if (!kb) goto fail;
    memcpy(kb, key, key_len);
    ki = (long)s->nk++;
    memset(&s->k[ki], 0, sizeof s->k[ki]);
    s->k[ki].key = kb;
    s->k[ki].key_len = key_len;
  }
  pkey *k = &s->k[ki];
  if (k->n == k->cap) {
    size_t nc = k->cap ? k->cap * 2 : 4;
    prov *np = realloc(k->p, nc * sizeof *np);
    if (!np) {
      if (k->n == 0) drop_pkey(s, (size_t)ki);
      goto fail;
    }
    k->p = np;
    k->cap = nc;
  }
  prov *p = &k->p[k->n++];
  memset(p, 0, sizeof *p);
  p->id = *provider;
  p->addrs = blob;
  p->addrs_len = blob_len;
  p->expires_ms = now_ms + s->cfg.provider_ttl_ms;
  p->addrs_expire_ms = now_ms + s->cfg.provider_addr_ttl_ms;
  p->added_ms = now_ms;
  s->nprov++;
  return 0;
fail:
  free(blob);
  return rc;
}

size_t kad_store_get_providers(kad_store *s, const uint8_t *key, size_t key_len, uint64_t now_ms, kad_provider *out,
                               size_t max) {
  long ki = find_pkey(s, key, key_len);
  if (ki < 0) return 0;
  pkey *k = &s->k[ki];
  /* Drop the expired ones of this key on the way. */
  for (size_t j = k->n; j-- > 0;)
    if (now_ms >= k->p[j].expires_ms) {
      free(k->p[j].addrs);
      k->p[j] = k->p[--k->n];
      s->nprov--;
      s->expired++;
    }
  if (k->n == 0) {
    drop_pkey(s, (size_t)ki);
    return 0;
  }
  /* Most recent first: insertion into out[] by added_ms (n ≤ max_providers_per_key). */
  size_t got = 0;
  for (size_t j = 0; j < k->n; j++) {
    prov *p = &k->p[j];
    size_t pos = got;
    while (pos > 0 && out[pos - 1].added_ms < p->added_ms) pos--;
    if (pos >= max) continue;
    size_t last = got < max ? got : max - 1;
    memmove(&out[pos + 1], &out[pos], (last - pos) * sizeof *out);
    kad_provider *o = &out[pos];
    o->id = p->id;
    o->added_ms = p->added_ms;
    o->expires_ms = p->expires_ms;
    o->n_addrs = now_ms < p->addrs_expire_ms
                     ? unpack_addrs(p->addrs, p->addrs_len, o->addrs, KAD_STORE_MAX_PROVIDER_ADDRS)
                     : 0;
    if (got < max) got++;
  }
  return got;
}

void kad_store_expire(kad_store *s, uint64_t now_ms) {
  expire_records(s, now_ms);
  expire_providers(s, now_ms);
}

void kad_store_get_stats(const kad_store *s, kad_store_stats *out) {
  out->records = s->nr;
  out->record_bytes = s->record_bytes;
  out->providers = s->nprov;
  out->provider_keys = s->nk;
  out->refused_full = s->refused_full;
  out->refused_quota = s->refused_quota;
  out->expired = s->expired;
}
