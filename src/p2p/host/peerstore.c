/* peerstore.c — bounded in-memory peer records and their JSON snapshot (see peerstore.h). */
#include "p2p/host/peerstore.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/clock.h"

static const char *const k_src_names[PEERSTORE_SRC_COUNT] = {"manual", "identify", "mdns", "dht", "bootstrap",
                                                               "rendezvous"};

const char *peerstore_source_name(unsigned bit) {
  for (unsigned i = 0; i < PEERSTORE_SRC_COUNT; i++)
    if (bit == 1u << i) return k_src_names[i];
  return NULL;
}

int peerstore_source_parse(const char *name, unsigned *bit) {
  for (unsigned i = 0; i < PEERSTORE_SRC_COUNT; i++)
    if (strcmp(name, k_src_names[i]) == 0) {
      *bit = 1u << i;
      return 0;
    }
  return -EINVAL;
}

/* How recently we saw or heard of a peer (the eviction order). */
static double recency(const peerstore_entry *e) {
  double r = e->last_seen > e->first_seen ? e->last_seen : e->first_seen;
  for (size_t i = 0; i < e->n_addrs; i++)
    if (e->addr_seen[i] > r) r = e->addr_seen[i];
  return r;
}

struct peerstore {
  peerstore_entry *e[PEERSTORE_MAX_PEERS];
  size_t n;
};

int peerstore_new(peerstore **out) {
  peerstore *ps = calloc(1, sizeof *ps);
  if (!ps) return -ENOMEM;
  *out = ps;
  return 0;
}

static void entry_free(peerstore_entry *e) {
  if (!e) return;
  for (size_t i = 0; i < e->n_addrs; i++) free(e->addrs[i]);
  for (size_t i = 0; i < e->n_protocols; i++) free(e->protocols[i]);
  free(e->agent_version);
  free(e->protocol_version);
  free(e->observed_addr);
  free(e->public_key);
  free(e);
}

void peerstore_free(peerstore *ps) {
  if (!ps) return;
  for (size_t i = 0; i < ps->n; i++) entry_free(ps->e[i]);
  free(ps);
}

peerstore_entry *peerstore_get(peerstore *ps, const char *peer_id) {
  for (size_t i = 0; i < ps->n; i++)
    if (strcmp(ps->e[i]->peer_id, peer_id) == 0) return ps->e[i];
  return NULL;
}

size_t peerstore_count(const peerstore *ps) { return ps->n; }
peerstore_entry *peerstore_at(peerstore *ps, size_t i) { return i < ps->n ? ps->e[i] : NULL; }

peerstore_entry *peerstore_upsert(peerstore *ps, const char *peer_id) {
  if (strlen(peer_id) >= PEERSTORE_ID_MAX) return NULL;
  peerstore_entry *e = peerstore_get(ps, peer_id);
  if (e) return e;
  if (ps->n == PEERSTORE_MAX_PEERS) {
    /* Evict the least recently seen peer without a live connection. */
    size_t victim = SIZE_MAX;
    for (size_t i = 0; i < ps->n; i++) {
      if (ps->e[i]->connections) continue;
      if (victim == SIZE_MAX || recency(ps->e[i]) < recency(ps->e[victim])) victim = i;
    }
    if (victim == SIZE_MAX) return NULL;
    entry_free(ps->e[victim]);
    ps->e[victim] = ps->e[--ps->n];
  }
  e = calloc(1, sizeof *e);
  if (!e) return NULL;
  snprintf(e->peer_id, sizeof e->peer_id, "%s", peer_id);
  e->first_seen = clock_wall_s();
  ps->e[ps->n++] = e;
  return e;
}

static char *dup_bounded(const char *s, size_t len) {
  if (len > PEERSTORE_MAX_STR) len = PEERSTORE_MAX_STR;
  char *d = malloc(len + 1);
  if (!d) return NULL;
  memcpy(d, s, len);
  d[len] = 0;
  return d;
}

int peerstore_add_addr(peerstore_entry *e, const char *addr) {
  if (!addr || !*addr) return -EINVAL;
  double now = clock_wall_s();
  for (size_t i = 0; i < e->n_addrs; i++)
    if (strcmp(e->addrs[i], addr) == 0) {
      e->addr_seen[i] = now;
      return 0;
    }
  char *d = dup_bounded(addr, strlen(addr));
  if (!d) return -ENOMEM;
  if (e->n_addrs == PEERSTORE_MAX_ADDRS) {
    free(e->addrs[0]);
    memmove(e->addrs, e->addrs + 1, (PEERSTORE_MAX_ADDRS - 1) * sizeof e->addrs[0]);
    memmove(e->addr_seen, e->addr_seen + 1, (PEERSTORE_MAX_ADDRS - 1) * sizeof e->addr_seen[0]);
    e->n_addrs--;
  }
  e->addr_seen[e->n_addrs] = now;
  e->addrs[e->n_addrs++] = d;
  return 0;
}

size_t peerstore_expire_addrs(peerstore *ps, double now, double max_age_s) {
  size_t dropped = 0;
  for (size_t i = 0; i < ps->n; i++) {
    peerstore_entry *e = ps->e[i];
    if (e->connections) continue;
    size_t k = 0;
    for (size_t j = 0; j < e->n_addrs; j++) {
      if (e->addr_seen[j] < now - max_age_s) {
        free(e->addrs[j]);
        dropped++;
        continue;
      }
      e->addrs[k] = e->addrs[j];
      e->addr_seen[k] = e->addr_seen[j];
      k++;
    }
    e->n_addrs = k;
  }
  return dropped;
}

int peerstore_set_protocols(peerstore_entry *e, const char *const *protos, size_t n) {
  if (n > PEERSTORE_MAX_PROTOCOLS) n = PEERSTORE_MAX_PROTOCOLS;
  char *tmp[PEERSTORE_MAX_PROTOCOLS];
  for (size_t i = 0; i < n; i++) {
    tmp[i] = dup_bounded(protos[i], strlen(protos[i]));
    if (!tmp[i]) {
      while (i--) free(tmp[i]);
      return -ENOMEM;
    }
  }
  for (size_t i = 0; i < e->n_protocols; i++) free(e->protocols[i]);
  memcpy(e->protocols, tmp, n * sizeof tmp[0]);
  e->n_protocols = n;
  return 0;
}

int peerstore_set_str(char **field, const char *val, size_t len) {
  char *d = NULL;
  if (val) {
    d = dup_bounded(val, len);
    if (!d) return -ENOMEM;
  }
  free(*field);
  *field = d;
  return 0;
}

int peerstore_set_public_key(peerstore_entry *e, const uint8_t *pb, size_t len, bool matches) {
  if (len > 4096) return -E2BIG;
  uint8_t *d = malloc(len ? len : 1);
  if (!d) return -ENOMEM;
  memcpy(d, pb, len);
  free(e->public_key);
  e->public_key = d;
  e->public_key_len = len;
  e->public_key_matches = matches;
  return 0;
}

bool peerstore_has_protocol(const peerstore_entry *e, const char *proto) {
  for (size_t i = 0; i < e->n_protocols; i++)
    if (strcmp(e->protocols[i], proto) == 0) return true;
  return false;
}

static json_t *str_array(char *const *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_string(v[i]));
  return a;
}

int peerstore_note_record_seq(peerstore_entry *e, uint64_t seq) {
  if (seq < e->record_seq) return -ESTALE;
  if (seq == e->record_seq) return 0;
  e->record_seq = seq;
  return 1;
}

char *peerstore_snapshot(const peerstore *ps) {
  json_t *peers = json_array();
  if (!peers) return NULL;
  for (size_t i = 0; i < ps->n; i++) {
    const peerstore_entry *e = ps->e[i];
    json_t *o = json_object();
    if (!o) continue;
    json_object_set_new(o, "peer_id", json_string(e->peer_id));
    json_object_set_new(o, "addrs", str_array(e->addrs, e->n_addrs));
    json_object_set_new(o, "protocols", str_array(e->protocols, e->n_protocols));
    if (e->agent_version) json_object_set_new(o, "agent_version", json_string(e->agent_version));
    if (e->protocol_version) json_object_set_new(o, "protocol_version", json_string(e->protocol_version));
    if (e->public_key && e->public_key_len) {
      size_t cap = sodium_base64_ENCODED_LEN(e->public_key_len, sodium_base64_VARIANT_ORIGINAL);
      char *b64 = malloc(cap);
      if (b64) {
        sodium_bin2base64(b64, cap, e->public_key, e->public_key_len, sodium_base64_VARIANT_ORIGINAL);
        json_object_set_new(o, "public_key", json_string(b64));
        free(b64);
      }
    }
    json_object_set_new(o, "last_seen", json_real(e->last_seen));
    json_object_set_new(o, "first_seen", json_real(e->first_seen));
    json_t *seen = json_array();
    for (size_t j = 0; seen && j < e->n_addrs; j++) json_array_append_new(seen, json_real(e->addr_seen[j]));
    if (seen) json_object_set_new(o, "addr_seen", seen);
    json_t *srcs = json_array();
    for (unsigned b = 0; srcs && b < PEERSTORE_SRC_COUNT; b++)
      if (e->sources & (1u << b)) json_array_append_new(srcs, json_string(k_src_names[b]));
    if (srcs) json_object_set_new(o, "sources", srcs);
    if (e->latency_ms > 0) json_object_set_new(o, "latency_ms", json_real(e->latency_ms));
    if (e->record_seq) {
      char seq[24];
      snprintf(seq, sizeof seq, "%llu", (unsigned long long)e->record_seq);
      json_object_set_new(o, "record_seq", json_string(seq));
    }
    json_array_append_new(peers, o);
  }
  json_t *root = json_pack("{s:i, s:o}", "version", 1, "peers", peers);
  if (!root) return NULL;
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return s;
}

int peerstore_write_file(const char *path, const char *json) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof tmp) return -ENAMETOOLONG;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  size_t len = strlen(json), off = 0;
  while (off < len) {
    ssize_t w = write(fd, json + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int err = -errno;
      close(fd);
      unlink(tmp);
      return err;
    }
    off += (size_t)w;
  }
  if (fsync(fd) != 0 || close(fd) != 0) {
    int err = -errno;
    unlink(tmp);
    return err;
  }
  if (rename(tmp, path) != 0) {
    int err = -errno;
    unlink(tmp);
    return err;
  }
  return 0;
}

int peerstore_load(peerstore *ps, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return errno == ENOENT ? 0 : -errno;
  if (!S_ISREG(st.st_mode)) return -EINVAL;
  if ((uint64_t)st.st_size > PEERSTORE_FILE_MAX) return -E2BIG;
  json_error_t jerr;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
  if (!root) return -EINVAL;
  json_t *peers = json_object_get(root, "peers");
  if (!json_is_array(peers)) {
    json_decref(root);
    return -EINVAL;
  }
  size_t i;
  json_t *o;
  json_array_foreach(peers, i, o) {
    const char *id = json_string_value(json_object_get(o, "peer_id"));
    if (!id || strlen(id) >= PEERSTORE_ID_MAX) continue;
    peerstore_entry *e = peerstore_upsert(ps, id);
    if (!e) break;
    size_t j;
    json_t *v;
    json_array_foreach(json_object_get(o, "addrs"), j, v) {
      if (json_is_string(v) && j < PEERSTORE_MAX_ADDRS) (void)!peerstore_add_addr(e, json_string_value(v));
    }
    const char *protos[PEERSTORE_MAX_PROTOCOLS];
    size_t np = 0;
    json_array_foreach(json_object_get(o, "protocols"), j, v) {
      if (json_is_string(v) && np < PEERSTORE_MAX_PROTOCOLS) protos[np++] = json_string_value(v);
    }
    (void)!peerstore_set_protocols(e, protos, np);
    const char *s;
    if ((s = json_string_value(json_object_get(o, "agent_version"))))
      (void)!peerstore_set_str(&e->agent_version, s, strlen(s));
    if ((s = json_string_value(json_object_get(o, "protocol_version"))))
      (void)!peerstore_set_str(&e->protocol_version, s, strlen(s));
    if ((s = json_string_value(json_object_get(o, "public_key")))) {
      uint8_t bin[2048];
      size_t blen = 0;
      if (strlen(s) < 2700 &&
          sodium_base642bin(bin, sizeof bin, s, strlen(s), NULL, &blen, NULL, sodium_base64_VARIANT_ORIGINAL) == 0)
        (void)!peerstore_set_public_key(e, bin, blen, false);
    }
    e->last_seen = json_number_value(json_object_get(o, "last_seen"));
    double fs = json_number_value(json_object_get(o, "first_seen"));
    if (fs > 0) e->first_seen = fs;
    /* Addresses from an older file (no addr_seen) count as heard of when it was written. */
    json_t *seen = json_object_get(o, "addr_seen");
    for (size_t k = 0; k < e->n_addrs; k++) {
      double t = json_number_value(json_array_get(seen, k));
      e->addr_seen[k] = t > 0 ? t : (e->last_seen > 0 ? e->last_seen : e->first_seen);
    }
    json_array_foreach(json_object_get(o, "sources"), j, v) {
      unsigned bit;
      if (json_is_string(v) && peerstore_source_parse(json_string_value(v), &bit) == 0) e->sources |= bit;
    }
    double lat = json_number_value(json_object_get(o, "latency_ms"));
    if (lat > 0 && lat < 1e9) e->latency_ms = lat;
    /* a decimal uint64 (20 digits at most); anything else is ignored */
    if ((s = json_string_value(json_object_get(o, "record_seq"))) && s[0] >= '0' && s[0] <= '9' && strlen(s) <= 20) {
      char *end = NULL;
      errno = 0;
      unsigned long long v = strtoull(s, &end, 10);
      if (errno == 0 && end && *end == 0) e->record_seq = (uint64_t)v;
    }
  }
  json_decref(root);
  return 0;
}
