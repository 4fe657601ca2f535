/* kad_rpc.c — Kademlia RPC server logic. See kad_rpc.h. */
#include "p2p/proto/kad_rpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/kad_record.h"

static size_t k_of(const kad_server *s) { return s->k ? s->k : KAD_K; }

size_t kad_server_closer(const kad_server *s, const uint8_t *key, size_t key_len, const peerid *exclude,
                         kad_peer_info *scratch, size_t n) {
  kad_key target;
  kad_key_of(key, key_len, &target);
  const kad_entry *es[KAD_MAX_PEERS];
  if (n > KAD_MAX_PEERS) n = KAD_MAX_PEERS;
  size_t got = kad_table_closest(s->table, &target, n, exclude, true, es);
  for (size_t i = 0; i < got; i++) {
    scratch[i].id = es[i]->id;
    scratch[i].addrs = es[i]->addrs;
    scratch[i].n_addrs = es[i]->n_addrs;
    scratch[i].connection = -1;
  }
  return got;
}

static void reply_init(const kad_msg *req, kad_msg *resp) {
  memset(resp, 0, sizeof *resp);
  resp->type = req->type;
  resp->has_cluster_level = req->has_cluster_level;
  resp->cluster_level = req->cluster_level;
}

static bool is_self_key(const kad_server *s, const uint8_t *key, size_t len) {
  return len == s->self.len && memcmp(key, s->self.bytes, len) == 0;
}

static int find_node(kad_server *s, const peerid *from, const kad_msg *req, buf *out) {
  kad_msg resp;
  reply_init(req, &resp);
  kad_peer_info peers[KAD_MAX_PEERS];
  size_t k = k_of(s);
  size_t n = kad_server_closer(s, req->key, req->key_len, from, peers, k);
  if (is_self_key(s, req->key, req->key_len) && s->n_self_addrs && n < KAD_MAX_PEERS) {
    peers[n].id = s->self;
    peers[n].addrs = s->self_addrs;
    peers[n].n_addrs = s->n_self_addrs > KAD_PEER_MAX_ADDRS ? KAD_PEER_MAX_ADDRS : s->n_self_addrs;
    peers[n].connection = -1;
    n++;
  }
  resp.closer = peers;
  resp.n_closer = n;
  return kad_msg_encode(&resp, out);
}

static int get_value(kad_server *s, const peerid *from, const kad_msg *req, uint64_t now_ms, double now_wall_s,
                     buf *out) {
  kad_msg resp;
  reply_init(req, &resp);
  resp.has_key = true;
  resp.key = req->key;
  resp.key_len = req->key_len;
  char tbuf[32];
  bool self_pk = s->self_public_key && req->key_len == 4 + s->self.len && memcmp(req->key, "/pk/", 4) == 0 &&
                 memcmp(req->key + 4, s->self.bytes, s->self.len) == 0;
  if (self_pk) {
    resp.has_record = true;
    resp.record.key = req->key;
    resp.record.key_len = req->key_len;
    resp.record.value = s->self_public_key;
    resp.record.value_len = s->self_public_key_len;
    kad_time_format(now_wall_s, tbuf);
    resp.record.time_received = tbuf;
  } else {
    const kad_stored_record *r = kad_store_get_record(s->store, req->key, req->key_len, now_ms);
    if (r) {
      resp.has_record = true;
      /* js-libp2p drops a reply whose Record.key differs from the key asked for. */
      resp.record.key = r->key;
      resp.record.key_len = r->key_len;
      resp.record.value = r->value;
      resp.record.value_len = r->value_len;
      kad_time_format(r->stored_wall_s, tbuf);
      resp.record.time_received = tbuf;
    }
  }
  kad_peer_info peers[KAD_MAX_PEERS];
  resp.n_closer = kad_server_closer(s, req->key, req->key_len, from, peers, k_of(s));
  resp.closer = peers;
  return kad_msg_encode(&resp, out);
}

static int put_value(kad_server *s, const peerid *from, const kad_msg *req, uint64_t now_ms, double now_wall_s,
                     buf *out) {
  if (!req->has_record) return -EPROTO;
  const kad_record *r = &req->record;
  if (r->key_len == 0 || r->key_len != req->key_len || memcmp(r->key, req->key, r->key_len) != 0) return -EPROTO;
  int rc = kad_record_validate(r->key, r->key_len, r->value, r->value_len, from);
  if (rc) return rc;
  const kad_stored_record *old = kad_store_get_record(s->store, r->key, r->key_len, now_ms);
  if (old && !(old->value_len == r->value_len && memcmp(old->value, r->value, r->value_len) == 0) &&
      kad_record_select(r->key, r->key_len, old->value, old->value_len, r->value, r->value_len) == 0)
    return -EALREADY;
  rc = kad_store_put_record(s->store, r->key, r->key_len, r->value, r->value_len, from, now_ms, now_wall_s);
  if (rc) return rc;
  /* Echo the request (as the spec asks). */
  kad_msg echo = *req;
  echo.closer = NULL;
  echo.n_closer = 0;
  echo.providers = NULL;
  echo.n_providers = 0;
  return kad_msg_encode(&echo, out);
}

static int get_providers(kad_server *s, const peerid *from, const kad_msg *req, uint64_t now_ms, buf *out) {
  kad_msg resp;
  reply_init(req, &resp);
  resp.has_key = true;
  resp.key = req->key;
  resp.key_len = req->key_len;
  size_t k = k_of(s);
  kad_provider *provs = calloc(k, sizeof *provs);
  if (!provs) return -ENOMEM;
  size_t np = kad_store_get_providers(s->store, req->key, req->key_len, now_ms, provs, k);
  kad_peer_info pinfo[KAD_MAX_PEERS];
  for (size_t i = 0; i < np; i++) {
    pinfo[i].id = provs[i].id;
    pinfo[i].addrs = provs[i].addrs;
    pinfo[i].n_addrs = provs[i].n_addrs;
    pinfo[i].connection = -1;
  }
  resp.providers = pinfo;
  resp.n_providers = np;
  kad_peer_info peers[KAD_MAX_PEERS];
  resp.n_closer = kad_server_closer(s, req->key, req->key_len, from, peers, k);
  resp.closer = peers;
  int rc = kad_msg_encode(&resp, out);
  free(provs);
  return rc;
}

static int add_provider(kad_server *s, const peerid *from, const kad_msg *req, uint64_t now_ms) {
  for (size_t i = 0; i < req->n_providers; i++) {
    const kad_peer_info *p = &req->providers[i];
    /* Only the sender may announce itself (spec: "all providerPeers that match the RPC
     * sender's PeerID are recorded"). Store refusals (bounds) are not the sender's error. */
    if (!peerid_equal(&p->id, from)) continue;
    int rc = kad_store_add_provider(s->store, req->key, req->key_len, from, p->addrs, p->n_addrs, now_ms);
    if (rc == -ENOMEM) return rc;
  }
  return 0;
}

int kad_server_handle(kad_server *s, const peerid *from, const kad_msg *req, uint64_t now_ms, double now_wall_s,
                      buf *out) {
  bool need_key = req->type != KAD_PING;
  if (need_key && (!req->has_key || req->key_len == 0)) return -EPROTO;
  switch (req->type) {
  case KAD_FIND_NODE:
    return find_node(s, from, req, out);
  case KAD_GET_VALUE:
    return get_value(s, from, req, now_ms, now_wall_s, out);
  case KAD_PUT_VALUE:
    return put_value(s, from, req, now_ms, now_wall_s, out);
  case KAD_GET_PROVIDERS:
    return get_providers(s, from, req, now_ms, out);
  case KAD_ADD_PROVIDER:
    return add_provider(s, from, req, now_ms);
  case KAD_PING: {
    kad_msg echo;
    reply_init(req, &echo);
    return kad_msg_encode(&echo, out);
  }
  default:
    return -EPROTO;
  }
}
