/* kad_msg.c — Kademlia RPC message codec (libp2p/specs kad-dht/README.md). See kad_msg.h. */
#include "p2p/proto/kad_msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kad.pb-c.h"
#include "p2p/core/varint.h"

/* ---- encode ---- */

/* Fills pb peers from m's peers; addrs/ptrs are caller scratch of n * KAD_PEER_MAX_ADDRS. */
static int fill_peers(const kad_peer_info *in, size_t n, Kadpb__Message__Peer *pbs, Kadpb__Message__Peer **ptrs,
                      ProtobufCBinaryData *addrs) {
  for (size_t i = 0; i < n; i++) {
    Kadpb__Message__Peer *p = &pbs[i];
    kadpb__message__peer__init(p);
    p->has_id = 1;
    p->id.data = (uint8_t *)in[i].id.bytes;
    p->id.len = in[i].id.len;
    if (in[i].n_addrs > KAD_PEER_MAX_ADDRS) return -E2BIG;
    ProtobufCBinaryData *a = addrs + i * KAD_PEER_MAX_ADDRS;
    for (size_t k = 0; k < in[i].n_addrs; k++) {
      a[k].data = (uint8_t *)in[i].addrs[k].bytes;
      a[k].len = in[i].addrs[k].len;
    }
    p->n_addrs = in[i].n_addrs;
    p->addrs = a;
    if (in[i].connection >= 0) {
      p->has_connection = 1;
      p->connection = (Kadpb__Message__ConnectionType)in[i].connection;
    }
    ptrs[i] = p;
  }
  return 0;
}

int kad_msg_encode(const kad_msg *m, buf *out) {
  if (m->n_closer > KAD_MAX_PEERS || m->n_providers > KAD_MAX_PEERS) return -E2BIG;
  if ((m->has_key && m->key_len > KAD_MAX_KEY) ||
      (m->has_record && (m->record.key_len > KAD_MAX_KEY || m->record.value_len > KAD_MAX_VALUE)))
    return -E2BIG;
  size_t np = m->n_closer + m->n_providers;
  Kadpb__Message__Peer *pbs = NULL;
  Kadpb__Message__Peer **ptrs = NULL;
  ProtobufCBinaryData *addrs = NULL;
  int rc = -ENOMEM;
  if (np) {
    pbs = calloc(np, sizeof *pbs);
    ptrs = calloc(np, sizeof *ptrs);
    addrs = calloc(np * KAD_PEER_MAX_ADDRS, sizeof *addrs);
    if (!pbs || !ptrs || !addrs) goto out;
  }
  Kadpb__Message pb = KADPB__MESSAGE__INIT;
  pb.has_type = 1;
  pb.type = (Kadpb__Message__MessageType)m->type;
  if (m->has_cluster_level) {
    pb.has_clusterlevelraw = 1;
    pb.clusterlevelraw = m->cluster_level;
  }
  if (m->has_key) {
    pb.has_key = 1;
    pb.key.data = (uint8_t *)m->key;
    pb.key.len = m->key_len;
  }
  Kadpb__Record rec = KADPB__RECORD__INIT;
  if (m->has_record) {
    rec.has_key = 1;
    rec.key.data = (uint8_t *)m->record.key;
    rec.key.len = m->record.key_len;
    rec.has_value = 1;
    rec.value.data = (uint8_t *)m->record.value;
    rec.value.len = m->record.value_len;
    rec.timereceived = (char *)m->record.time_received;
    pb.record = &rec;
  }
  if (np) {
    if ((rc = fill_peers(m->closer, m->n_closer, pbs, ptrs, addrs))) goto out;
    if ((rc = fill_peers(m->providers, m->n_providers, pbs + m->n_closer, ptrs + m->n_closer,
                         addrs + m->n_closer * KAD_PEER_MAX_ADDRS)))
      goto out;
    pb.n_closerpeers = m->n_closer;
    pb.closerpeers = ptrs;
    pb.n_providerpeers = m->n_providers;
    pb.providerpeers = ptrs + m->n_closer;
  }
  size_t sz = kadpb__message__get_packed_size(&pb);
  rc = -E2BIG;
  if (sz > KAD_MAX_MSG) goto out;
  uint8_t hdr[VARINT_MAX_BYTES];
  size_t hl = varint_encode(sz, hdr);
  uint8_t *p;
  if ((rc = buf_reserve(out, hl + sz, &p))) goto out;
  memcpy(p, hdr, hl);
  kadpb__message__pack(&pb, p + hl);
  buf_commit(out, hl + sz);
  rc = 0;
out:
  free(pbs);
  free(ptrs);
  free(addrs);
  return rc;
}

/* ---- decode ---- */

static int dup_bytes(const ProtobufCBinaryData *b, size_t max, const uint8_t **out, size_t *len) {
  if (b->len > max) return -E2BIG;
  uint8_t *p = malloc(b->len ? b->len : 1);
  if (!p) return -ENOMEM;
  if (b->len) memcpy(p, b->data, b->len);
  *out = p;
  *len = b->len;
  return 0;
}

static int take_peers(Kadpb__Message__Peer **in, size_t n, kad_peer_info **out, size_t *nout, size_t *skipped) {
  size_t keep = n > KAD_MAX_PEERS ? KAD_MAX_PEERS : n;
  *skipped += n - keep;
  if (!keep) return 0;
  kad_peer_info *ps = calloc(keep, sizeof *ps);
  if (!ps) return -ENOMEM;
  *out = ps;
  for (size_t i = 0; i < keep; i++) {
    Kadpb__Message__Peer *p = in[i];
    kad_peer_info *d = &ps[*nout];
    if (!p->has_id || peerid_from_bytes(p->id.data, p->id.len, &d->id)) {
      (*skipped)++;
      continue;
    }
    d->connection = p->has_connection ? (int)p->connection : -1;
    size_t na = p->n_addrs > KAD_PEER_MAX_ADDRS ? KAD_PEER_MAX_ADDRS : p->n_addrs;
    *skipped += p->n_addrs - na;
    if (na) {
      multiaddr *as = calloc(na, sizeof *as);
      if (!as) return -ENOMEM;
      d->addrs = as;
      for (size_t k = 0; k < na; k++) {
        if (multiaddr_from_bytes(p->addrs[k].data, p->addrs[k].len, &as[d->n_addrs]) == 0)
          d->n_addrs++;
        else
          (*skipped)++;
      }
    }
    (*nout)++;
  }
  return 0;
}

int kad_msg_decode(const uint8_t *p, size_t n, kad_msg *out) {
  memset(out, 0, sizeof *out);
  if (n > KAD_MAX_MSG) return -E2BIG;
  Kadpb__Message *pb = kadpb__message__unpack(NULL, n, p);
  if (!pb) return -EINVAL;
  int rc = 0;
  out->type = pb->has_type ? (int)pb->type : KAD_PUT_VALUE; /* proto3 default */
  out->has_cluster_level = pb->has_clusterlevelraw;
  out->cluster_level = pb->clusterlevelraw;
  if (pb->has_key) {
    out->has_key = true;
    if ((rc = dup_bytes(&pb->key, KAD_MAX_KEY, &out->key, &out->key_len))) goto out;
  }
  if (pb->record) {
    Kadpb__Record *r = pb->record;
    out->has_record = true;
    static const ProtobufCBinaryData empty = {0, NULL};
    if ((rc = dup_bytes(r->has_key ? &r->key : &empty, KAD_MAX_KEY, &out->record.key, &out->record.key_len)) ||
        (rc = dup_bytes(r->has_value ? &r->value : &empty, KAD_MAX_VALUE, &out->record.value,
                        &out->record.value_len)))
      goto out;
    if (r->timereceived) {
      size_t tl = strnlen(r->timereceived, KAD_MAX_TIME + 1);
      if (tl > KAD_MAX_TIME) {
        rc = -E2BIG;
        goto out;
      }
      char *t = malloc(tl + 1);
      if (!t) {
        rc = -ENOMEM;
        goto out;
      }
      memcpy(t, r->timereceived, tl);
      t[tl] = 0;
      out->record.time_received = t;
    }
  }
  if ((rc = take_peers(pb->closerpeers, pb->n_closerpeers, &out->closer, &out->n_closer, &out->n_skipped)) ||
      (rc = take_peers(pb->providerpeers, pb->n_providerpeers, &out->providers, &out->n_providers,
                       &out->n_skipped)))
    goto out;
out:
  kadpb__message__free_unpacked(pb, NULL);
  if (rc) kad_msg_clear(out);
  return rc;
}

static void free_peers(kad_peer_info *ps, size_t n) {
  if (!ps) return;
  /* Entries past n were never given addresses (take_peers counts an entry once it owns any). */
  for (size_t i = 0; i < n; i++) free((void *)ps[i].addrs);
  free(ps);
}

void kad_msg_clear(kad_msg *m) {
  /* Decoded messages own these (const only so that encode callers can pass their data). */
  free((void *)m->key);
  free((void *)m->record.key);
  free((void *)m->record.value);
  free((void *)m->record.time_received);
  free_peers(m->closer, m->n_closer);
  free_peers(m->providers, m->n_providers);
  memset(m, 0, sizeof *m);
}

int kad_frame_parse(const uint8_t *in, size_t n, const uint8_t **msg, size_t *msg_len, size_t *consumed) {
  uint64_t len;
  size_t used;
  int rc = varint_decode(in, n, &len, &used);
  if (rc == -EAGAIN) return -EAGAIN;
  if (rc) return -EINVAL;
  if (len > KAD_MAX_MSG) return -EMSGSIZE;
  if (n - used < len) return -EAGAIN;
  *msg = in + used;
  *msg_len = (size_t)len;
  *consumed = used + (size_t)len;
  return 0;
}

/* ---- record time ---- */

void kad_time_format(double wall_s, char out[32]) {
  if (wall_s < 0) wall_s = 0;
  time_t t = (time_t)wall_s;
  struct tm tm;
  gmtime_r(&t, &tm);
  long ms = (long)((wall_s - (double)t) * 1000.0 + 0.5);
  if (ms < 0) ms = 0;
  if (ms > 999) ms = 999;
  /* Millisecond precision in nanosecond digits, as js-libp2p writes it. */
  char tmp[96];
  snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", (tm.tm_year + 1900) % 10000, tm.tm_mon + 1,
           tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms * 1000000L);
  memcpy(out, tmp, 31);
  out[31] = 0;
}

static int digits(const char *s, int n, int *v) {
  *v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -EINVAL;
    *v = *v * 10 + (s[i] - '0');
  }
  return 0;
}

int kad_time_parse(const char *s, double *wall_s) {
  size_t n = strnlen(s, KAD_MAX_TIME + 1);
  if (n < 20 || n > KAD_MAX_TIME) return -EINVAL;
  int Y, M, D, h, mi, sec;
  if (digits(s, 4, &Y) || s[4] != '-' || digits(s + 5, 2, &M) || s[7] != '-' || digits(s + 8, 2, &D) ||
      s[10] != 'T' || digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
      digits(s + 17, 2, &sec))
    return -EINVAL;
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60) return -EINVAL;
  size_t i = 19;
  double frac = 0, scale = 0.1;
  if (s[i] == '.') {
    i++;
    if (s[i] < '0' || s[i] > '9') return -EINVAL;
    while (s[i] >= '0' && s[i] <= '9') {
      frac += (s[i] - '0') * scale;
      scale /= 10;
      i++;
    }
  }
  if (s[i] != 'Z' || s[i + 1] != 0) return -EINVAL;
  struct tm tm = {0};
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  *wall_s = (double)t + frac;
  return 0;
}
