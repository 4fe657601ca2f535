/* kad_table.c — Kademlia keys and k-bucket routing table. See kad_table.h. */
#include "p2p/proto/kad_table.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define KAD_K_MAX 64

struct kad_table {
  peerid self;
  kad_key self_key;
  size_t k;
  size_t count;
  kad_entry **bucket[KAD_BUCKETS]; /* k slots each, allocated on first use; LRU first */
  size_t n[KAD_BUCKETS];
};

void kad_key_of(const uint8_t *bytes, size_t n, kad_key *out) { crypto_hash_sha256(out->b, bytes, n); }

void kad_key_of_peer(const peerid *p, kad_key *out) { kad_key_of(p->bytes, p->len, out); }

unsigned kad_key_cpl(const kad_key *a, const kad_key *b) {
  for (unsigned i = 0; i < KAD_KEY_BYTES; i++) {
    uint8_t x = a->b[i] ^ b->b[i];
    if (x) return i * 8 + (unsigned)__builtin_clz((unsigned)x) - 24;
  }
  return KAD_KEY_BYTES * 8;
}

int kad_key_cmp_distance(const kad_key *target, const kad_key *a, const kad_key *b) {
  for (unsigned i = 0; i < KAD_KEY_BYTES; i++) {
    uint8_t da = a->b[i] ^ target->b[i], db = b->b[i] ^ target->b[i];
    if (da != db) return da < db ? -1 : 1;
  }
  return 0;
}

int kad_key_random_in_bucket(const kad_key *self, unsigned cpl, uint8_t out[34]) {
  if (cpl > 15) return -EINVAL;
  out[0] = 0x12;
  out[1] = 0x20;
  for (unsigned tries = 0; tries < (1u << 22); tries++) {
    randombytes_buf(out + 2, 32);
    kad_key k;
    kad_key_of(out, 34, &k);
    if (kad_key_cpl(self, &k) == cpl) return 0;
  }
  return -EINVAL; /* 2^22 misses at p ≥ 2^-16 each: does not happen */
}

int kad_table_new(const peerid *self, size_t k, kad_table **out) {
  *out = NULL;
  if (k == 0) k = KAD_K;
  if (k > KAD_K_MAX) return -EINVAL;
  kad_table *t = calloc(1, sizeof *t);
  if (!t) return -ENOMEM;
  t->self = *self;
  kad_key_of_peer(self, &t->self_key);
  t->k = k;
  *out = t;
  return 0;
}

void kad_table_free(kad_table *t) {
  if (!t) return;
  for (unsigned b = 0; b < KAD_BUCKETS; b++) {
    for (size_t i = 0; i < t->n[b]; i++) free(t->bucket[b][i]);
    free(t->bucket[b]);
  }
  free(t);
}

const kad_key *kad_table_self_key(const kad_table *t) { return &t->self_key; }

static unsigned bucket_of(const kad_table *t, const kad_key *k) {
  unsigned c = kad_key_cpl(&t->self_key, k);
  return c >= KAD_BUCKETS ? KAD_BUCKETS - 1 : c;
}

static long find_in(const kad_table *t, unsigned b, const peerid *id) {
  for (size_t i = 0; i < t->n[b]; i++)
    if (peerid_equal(&t->bucket[b][i]->id, id)) return (long)i;
  return -1;
}

/* Newest addresses first; duplicates moved to the front. */
static void merge_addrs(kad_entry *e, const multiaddr *addrs, size_t n) {
  for (size_t i = n; i-- > 0;) {
    multiaddr a;
    multiaddr_strip_p2p(&addrs[i], &a);
    size_t at = e->n_addrs;
    for (size_t k = 0; k < e->n_addrs; k++)
      if (multiaddr_equal(&e->addrs[k], &a)) at = k;
    if (at == e->n_addrs) at = e->n_addrs < KAD_ENTRY_MAX_ADDRS ? e->n_addrs++ : KAD_ENTRY_MAX_ADDRS - 1;
    memmove(&e->addrs[1], &e->addrs[0], at * sizeof e->addrs[0]);
    e->addrs[0] = a;
  }
}

static void move_to_tail(kad_table *t, unsigned b, size_t i) {
  kad_entry *e = t->bucket[b][i];
  memmove(&t->bucket[b][i], &t->bucket[b][i + 1], (t->n[b] - i - 1) * sizeof(kad_entry *));
  t->bucket[b][t->n[b] - 1] = e;
}

int kad_table_add(kad_table *t, const peerid *id, const multiaddr *addrs, size_t n_addrs, uint64_t now_ms,
                  const kad_entry **oldest) {
  if (oldest) *oldest = NULL;
  if (peerid_equal(id, &t->self)) return -EINVAL;
  kad_key key;
  kad_key_of_peer(id, &key);
  unsigned b = bucket_of(t, &key);
  long at = find_in(t, b, id);
  if (at >= 0) {
    kad_entry *e = t->bucket[b][at];
    e->last_seen_ms = now_ms;
    e->failures = 0;
    if (n_addrs) merge_addrs(e, addrs, n_addrs);
    move_to_tail(t, b, (size_t)at);
    return 0;
  }
  if (!t->bucket[b]) {
    t->bucket[b] = calloc(t->k, sizeof(kad_entry *));
    if (!t->bucket[b]) return -ENOMEM;
  }
  kad_entry *e;
  if (t->n[b] == t->k) {
    kad_entry *lru = t->bucket[b][0];
    if (lru->failures == 0) {
      if (oldest) *oldest = lru;
      return -ENOSPC;
    }
    /* The least recently seen peer failed since: it makes room. */
    e = lru;
    memmove(&t->bucket[b][0], &t->bucket[b][1], (t->n[b] - 1) * sizeof(kad_entry *));
    t->n[b]--;
    t->count--;
    memset(e, 0, sizeof *e);
  } else {
    e = calloc(1, sizeof *e);
    if (!e) return -ENOMEM;
  }
  e->id = *id;
  e->key = key;
  e->added_ms = e->last_seen_ms = now_ms;
  if (n_addrs) merge_addrs(e, addrs, n_addrs);
  t->bucket[b][t->n[b]++] = e;
  t->count++;
  assert(t->n[b] <= t->k);
  return 1;
}

int kad_table_remove(kad_table *t, const peerid *id) {
  kad_key key;
  kad_key_of_peer(id, &key);
  unsigned b = bucket_of(t, &key);
  long at = find_in(t, b, id);
  if (at < 0) return -ENOENT;
  free(t->bucket[b][at]);
  memmove(&t->bucket[b][at], &t->bucket[b][at + 1], (t->n[b] - (size_t)at - 1) * sizeof(kad_entry *));
  t->n[b]--;
  t->count--;
  return 0;
}

kad_entry *kad_table_find(kad_table *t, const peerid *id) {
  kad_key key;
  kad_key_of_peer(id, &key);
  unsigned b = bucket_of(t, &key);
  long at = find_in(t, b, id);
  return at < 0 ? NULL : t->bucket[b][at];
}

uint32_t kad_table_failed(kad_table *t, const peerid *id) {
  kad_entry *e = kad_table_find(t, id);
  if (!e) return 0;
  return ++e->failures;
}

size_t kad_table_closest(const kad_table *t, const kad_key *target, size_t n, const peerid *exclude,
                         bool with_addrs, const kad_entry **out) {
  size_t got = 0;
  if (n == 0) return 0;
  for (unsigned b = 0; b < KAD_BUCKETS; b++) {
    for (size_t i = 0; i < t->n[b]; i++) {
      const kad_entry *e = t->bucket[b][i];
      if ((exclude && peerid_equal(&e->id, exclude)) || (with_addrs && e->n_addrs == 0)) continue;
      /* Insertion into the sorted prefix out[0..got). */
      size_t pos = got;
      while (pos > 0 && kad_key_cmp_distance(target, &e->key, &out[pos - 1]->key) < 0) pos--;
      if (pos >= n) continue;
      size_t last = got < n ? got : n - 1;
      memmove(&out[pos + 1], &out[pos], (last - pos) * sizeof *out);
      out[pos] = e;
      if (got < n) got++;
    }
  }
  return got;
}

size_t kad_table_size(const kad_table *t) { return t->count; }

size_t kad_table_bucket_size(const kad_table *t, unsigned cpl) { return cpl < KAD_BUCKETS ? t->n[cpl] : 0; }

const kad_entry *kad_table_at(const kad_table *t, size_t i) {
  for (unsigned b = 0; b < KAD_BUCKETS; b++) {
    if (i < t->n[b]) return t->bucket[b][i];
    i -= t->n[b];
  }
  return NULL;
}
