/* mdns.c — libp2p mDNS discovery engine (libp2p/specs discovery/mdns.md). See mdns.h. */
#include "p2p/proto/mdns.h"

#include <assert.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/dns.h"

#define META_SERVICE "_services._dns-sd._udp.local"
#define TXT_MAX 255
#define MAX_IPS 8 /* A and AAAA records of our own, and per packet for the fallback */

/* What a response carries in its answer section. */
enum { W_PTR = 1, W_TXT = 2, W_SRV = 4, W_ADDR = 8, W_META = 16 };

struct mdns {
  dns_name service, meta, instance, host;
  char name[64];
  peerid self;
  char self_str[PEERID_STR_MAX];
  uint32_t ttl;
  uint32_t query_max_ms;
  bool allow_loopback, passive;
  /* what we announce */
  char txt[MDNS_MAX_ADDRS + 1][TXT_MAX + 1];
  size_t n_txt;      /* dnsaddr strings, then "id=" (only when there is at least one address) */
  uint8_t v4[MAX_IPS][4];
  size_t n_v4;
  uint8_t v6[MAX_IPS][16];
  size_t n_v6;
  uint16_t port;     /* first TCP port, 0 = none (no SRV) */
  /* schedule */
  bool started;
  uint64_t next_query, query_gap;
  unsigned announce_left;
  uint64_t next_announce;
  unsigned pending;  /* W_* bits owed to queriers */
  uint64_t response_due;
  uint64_t last_response;
  bool responded;
};

static bool valid_peer_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > DNS_MAX_LABEL) return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9'))) return false;
  return true;
}

int mdns_new(const mdns_config *cfg, const char *self_peer_id, mdns **out) {
  *out = NULL;
  mdns *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  int rc = -EINVAL;
  if (peerid_parse(self_peer_id, strlen(self_peer_id), &m->self) ||
      peerid_to_string(&m->self, m->self_str, sizeof m->self_str))
    goto fail;
  if (cfg->peer_name) {
    if (!valid_peer_name(cfg->peer_name)) goto fail;
    snprintf(m->name, sizeof m->name, "%s", cfg->peer_name);
  } else {
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    for (int i = 0; i < MDNS_PEER_NAME_LEN; i++) m->name[i] = alnum[randombytes_uniform(36)];
    m->name[MDNS_PEER_NAME_LEN] = 0;
  }
  dns_name local;
  if (dns_name_from_text(cfg->service ? cfg->service : MDNS_SERVICE, &m->service) ||
      dns_name_from_text(META_SERVICE, &m->meta) || dns_name_from_text("local", &local) ||
      dns_name_prepend(m->name, strlen(m->name), &m->service, &m->instance) ||
      dns_name_prepend(m->name, strlen(m->name), &local, &m->host))
    goto fail;
  m->ttl = cfg->ttl_s ? cfg->ttl_s : MDNS_DEFAULT_TTL_S;
  m->query_max_ms = cfg->query_interval_ms ? cfg->query_interval_ms : MDNS_DEFAULT_QUERY_INTERVAL_MS;
  m->allow_loopback = cfg->allow_loopback;
  m->passive = cfg->passive;
  *out = m;
  return 0;
fail:
  free(m);
  return rc;
}

void mdns_free(mdns *m) { free(m); }

const char *mdns_peer_name(const mdns *m) { return m->name; }

/* ---- the address filter ---- */

static bool dns_name_is_local(const uint8_t *v, size_t n) {
  static const char suf[] = ".local";
  size_t sl = sizeof suf - 1;
  if (n > 0 && v[n - 1] == '.') n--;
  if (n <= sl) return false;
  for (size_t i = 0; i < sl; i++) {
    uint8_t c = v[n - sl + i];
    if (c >= 'A' && c <= 'Z') c = (uint8_t)(c + 32);
    if (c != (uint8_t)suf[i]) return false;
  }
  return true;
}

bool mdns_addr_acceptable(const multiaddr *ma, bool allow_loopback) {
  size_t off = 0;
  multiaddr_component c;
  bool first = true;
  int rc;
  while ((rc = multiaddr_next(ma, &off, &c)) == 1) {
    if (c.code == MA_P2P_CIRCUIT) return false;
    if (!first) continue;
    first = false;
    const uint8_t *v = c.value;
    switch (c.code) {
    case MA_IP4:
      if ((v[0] | v[1] | v[2] | v[3]) == 0) return false;           /* 0.0.0.0 */
      if (v[0] == 169 && v[1] == 254) return false;                  /* link-local */
      if (v[0] >= 224) return false;                                 /* multicast, reserved */
      if (v[0] == 127 && !allow_loopback) return false;
      break;
    case MA_IP6: {
      static const uint8_t zero[16], one[16] = {[15] = 1};
      if (memcmp(v, zero, 16) == 0) return false;                   /* :: */
      if (v[0] == 0xfe && (v[1] & 0xc0) == 0x80) return false;       /* fe80::/10 */
      if (v[0] == 0xff) return false;                                /* multicast */
      if (memcmp(v, one, 16) == 0 && !allow_loopback) return false; /* ::1 */
      /* IPv4-mapped addresses follow the IPv4 rules for loopback. */
      static const uint8_t mapped[12] = {[10] = 0xff, [11] = 0xff};
      if (memcmp(v, mapped, 12) == 0 && v[12] == 127 && !allow_loopback) return false;
      break;
    }
    case MA_DNS:
    case MA_DNS4:
    case MA_DNS6:
      if (!dns_name_is_local(v, c.value_len)) return false;
      break;
    default:
      return false; /* dnsaddr, unix, memory, …: nothing a LAN peer can dial from a datagram */
    }
  }
  return rc == 0 && !first;
}

/* ---- our announcement ---- */

int mdns_set_addrs(mdns *m, const char *const *addrs, size_t n) {
  char txt[MDNS_MAX_ADDRS + 1][TXT_MAX + 1];
  size_t nt = 0, n4 = 0, n6 = 0;
  uint8_t v4[MAX_IPS][4], v6[MAX_IPS][16];
  uint16_t port = 0;
  for (size_t i = 0; i < n && nt < MDNS_MAX_ADDRS; i++) {
    multiaddr ma;
    peerid pid;
    if (multiaddr_parse(addrs[i], &ma)) continue;
    if (multiaddr_get_peerid(&ma, &pid) == 0 && !peerid_equal(&pid, &m->self)) continue;
    multiaddr_strip_p2p(&ma, &ma);
    if (!mdns_addr_acceptable(&ma, m->allow_loopback)) continue;
    char text[MULTIADDR_STR_MAX];
    if (multiaddr_to_string(&ma, text, sizeof text)) continue;
    int w = snprintf(txt[nt], sizeof txt[nt], "dnsaddr=%s/p2p/%s", text, m->self_str);
    if (w < 0 || (size_t)w > TXT_MAX) continue; /* a TXT string holds at most 255 bytes */
    bool dup = false;
    for (size_t k = 0; k < nt && !dup; k++) dup = strcmp(txt[k], txt[nt]) == 0;
    if (dup) continue;
    nt++;
    size_t off = 0;
    multiaddr_component c;
    if (multiaddr_next(&ma, &off, &c) != 1) continue;
    bool is4 = c.code == MA_IP4, is6 = c.code == MA_IP6;
    if (is4 && n4 < MAX_IPS) {
      bool seen = false;
      for (size_t k = 0; k < n4; k++) seen |= memcmp(v4[k], c.value, 4) == 0;
      if (!seen) memcpy(v4[n4++], c.value, 4);
    } else if (is6 && n6 < MAX_IPS) {
      bool seen = false;
      for (size_t k = 0; k < n6; k++) seen |= memcmp(v6[k], c.value, 16) == 0;
      if (!seen) memcpy(v6[n6++], c.value, 16);
    }
    if (!port && multiaddr_next(&ma, &off, &c) == 1 && c.code == MA_TCP)
      port = (uint16_t)(c.value[0] << 8 | c.value[1]);
  }
  size_t kept = nt;
  if (nt) snprintf(txt[nt++], sizeof txt[0], "id=%s", m->self_str);
  bool changed = nt != m->n_txt || port != m->port;
  for (size_t k = 0; k < nt && !changed; k++) changed = strcmp(txt[k], m->txt[k]) != 0;
  memcpy(m->txt, txt, sizeof txt);
  m->n_txt = nt;
  memcpy(m->v4, v4, sizeof v4);
  m->n_v4 = n4;
  memcpy(m->v6, v6, sizeof v6);
  m->n_v6 = n6;
  m->port = port;
  if (changed && m->started && !m->passive && nt) {
    m->announce_left = 2;
    m->next_announce = 0; /* due at the next poll */
  }
  return (int)kept;
}

void mdns_start(mdns *m, uint64_t now_ms) {
  m->started = true;
  m->next_query = now_ms;
  m->query_gap = 1000;
  if (!m->passive && m->n_txt) {
    m->announce_left = 2;
    m->next_announce = now_ms;
  }
}

void mdns_query_now(mdns *m, uint64_t now_ms) {
  if (!m->started) return;
  m->next_query = now_ms;
  m->query_gap = 1000;
}

/* ---- building packets ---- */

static int build_query(const mdns *m, uint8_t *out, size_t cap) {
  dns_writer w;
  dns_writer_init(&w, out, cap, 0, 0);
  int rc = dns_writer_question(&w, &m->service, DNS_TYPE_PTR, DNS_CLASS_IN);
  if (rc) return rc;
  return dns_writer_finish(&w);
}

static int add_txt(const mdns *m, dns_writer *w, dns_section sec, uint32_t ttl) {
  const uint8_t *strs[MDNS_MAX_ADDRS + 1];
  size_t lens[MDNS_MAX_ADDRS + 1];
  for (size_t i = 0; i < m->n_txt; i++) {
    strs[i] = (const uint8_t *)m->txt[i];
    lens[i] = strlen(m->txt[i]);
  }
  /* Leave addresses out (never the id= string) until the record fits. */
  size_t n = m->n_txt;
  for (;;) {
    int rc = dns_writer_txt(w, sec, &m->instance, DNS_CLASS_IN | DNS_CLASS_TOP_BIT, ttl, strs, lens, n);
    if (rc != -ENOSPC || n <= 2) return rc;
    strs[n - 2] = strs[n - 1];
    lens[n - 2] = lens[n - 1];
    n--;
  }
}

static int add_srv(const mdns *m, dns_writer *w, dns_section sec, uint32_t ttl) {
  if (!m->port) return 0;
  return dns_writer_srv(w, sec, &m->instance, DNS_CLASS_IN | DNS_CLASS_TOP_BIT, ttl, 0, 0, m->port, &m->host);
}

static int add_ips(const mdns *m, dns_writer *w, dns_section sec, uint32_t ttl) {
  for (size_t i = 0; i < m->n_v4; i++) {
    int rc = dns_writer_raw(w, sec, &m->host, DNS_TYPE_A, DNS_CLASS_IN | DNS_CLASS_TOP_BIT, ttl, m->v4[i], 4);
    if (rc) return rc;
  }
  for (size_t i = 0; i < m->n_v6; i++) {
    int rc = dns_writer_raw(w, sec, &m->host, DNS_TYPE_AAAA, DNS_CLASS_IN | DNS_CLASS_TOP_BIT, ttl, m->v6[i], 16);
    if (rc) return rc;
  }
  return 0;
}

/* A response answering `want`; the rest of our records go to the additional section. Records
 * that do not fit are left out (optional ones first, since the order is by importance). */
static int build_response(const mdns *m, unsigned want, uint32_t ttl, uint8_t *out, size_t cap) {
  if (!m->n_txt) return 0;
  dns_writer w;
  dns_writer_init(&w, out, cap, 0, DNS_FLAG_QR | DNS_FLAG_AA);
  int rc = 0;
  if (want & W_META) rc = dns_writer_ptr(&w, DNS_SEC_ANSWER, &m->meta, DNS_CLASS_IN, ttl, &m->service);
  if (!rc && (want & W_PTR)) rc = dns_writer_ptr(&w, DNS_SEC_ANSWER, &m->service, DNS_CLASS_IN, ttl, &m->instance);
  if (!rc && (want & W_TXT)) rc = add_txt(m, &w, DNS_SEC_ANSWER, ttl);
  if (!rc && (want & W_SRV)) rc = add_srv(m, &w, DNS_SEC_ANSWER, ttl);
  if (!rc && (want & W_ADDR)) rc = add_ips(m, &w, DNS_SEC_ANSWER, ttl);
  if (rc) return rc;
  if (want & (W_PTR | W_TXT | W_SRV | W_ADDR)) {
    /* Additional records are best effort: -ENOSPC leaves the rest out. */
    if (!(want & W_TXT) && (rc = add_txt(m, &w, DNS_SEC_ADDITIONAL, ttl)) && rc != -ENOSPC) return rc;
    if (!(want & W_SRV) && (rc = add_srv(m, &w, DNS_SEC_ADDITIONAL, ttl)) && rc != -ENOSPC) return rc;
    if (!(want & W_ADDR) && (rc = add_ips(m, &w, DNS_SEC_ADDITIONAL, ttl)) && rc != -ENOSPC) return rc;
  }
  return dns_writer_finish(&w);
}

int mdns_goodbye(mdns *m, uint8_t *out, size_t cap) {
  if (m->passive) return 0;
  return build_response(m, W_PTR, 0, out, cap < MDNS_MAX_OUT ? cap : MDNS_MAX_OUT);
}

int mdns_poll(mdns *m, uint64_t now_ms, uint8_t *out, size_t cap) {
  if (!m->started) return 0;
  if (cap > MDNS_MAX_OUT) cap = MDNS_MAX_OUT;
  if (m->pending && now_ms >= m->response_due) {
    unsigned want = m->pending;
    m->pending = 0;
    int n = build_response(m, want, m->ttl, out, cap);
    if (n > 0) {
      m->last_response = now_ms;
      m->responded = true;
    }
    if (n != 0) return n;
  }
  if (m->announce_left && now_ms >= m->next_announce) {
    m->announce_left--;
    m->next_announce = now_ms + 1000;
    int n = m->passive ? 0 : build_response(m, W_PTR, m->ttl, out, cap);
    if (n > 0) {
      m->last_response = now_ms;
      m->responded = true;
    }
    if (n != 0) return n;
  }
  if (now_ms >= m->next_query) {
    m->next_query = now_ms + m->query_gap;
    m->query_gap = m->query_gap * 2 > m->query_max_ms ? m->query_max_ms : m->query_gap * 2;
    return build_query(m, out, cap);
  }
  return 0;
}

uint64_t mdns_next_deadline(const mdns *m) {
  if (!m->started) return UINT64_MAX;
  uint64_t t = m->next_query;
  if (m->pending && m->response_due < t) t = m->response_due;
  if (m->announce_left && m->next_announce < t) t = m->next_announce;
  return t;
}

/* ---- receiving ---- */

static bool class_ok(uint16_t k) { return k == DNS_CLASS_IN || k == DNS_CLASS_ANY; }

static int handle_query(mdns *m, dns_reader *r, uint64_t now_ms) {
  unsigned want = 0;
  dns_question q;
  int rc;
  while ((rc = dns_reader_question(r, &q)) == 1) {
    if (!class_ok(q.klass)) continue;
    bool any = q.type == DNS_TYPE_ANY;
    if (dns_name_equal(&q.name, &m->service) && (any || q.type == DNS_TYPE_PTR)) want |= W_PTR;
    else if (dns_name_equal(&q.name, &m->meta) && (any || q.type == DNS_TYPE_PTR)) want |= W_META;
    else if (dns_name_equal(&q.name, &m->instance)) {
      if (any || q.type == DNS_TYPE_TXT) want |= W_TXT;
      if (any || q.type == DNS_TYPE_SRV) want |= W_SRV;
    } else if (dns_name_equal(&q.name, &m->host) &&
               (any || q.type == DNS_TYPE_A || q.type == DNS_TYPE_AAAA))
      want |= W_ADDR;
  }
  if (rc < 0) return rc;
  /* Known answers (RFC 6762 §7.1): the querier already holds our PTR with over half its TTL. */
  dns_rr rr;
  while ((rc = dns_reader_rr(r, &rr)) == 1) {
    if (rr.section == DNS_SEC_ANSWER && rr.type == DNS_TYPE_PTR && dns_name_equal(&rr.name, &m->service) &&
        dns_name_equal(&rr.target, &m->instance) && rr.ttl > m->ttl / 2)
      want &= ~(unsigned)W_PTR;
  }
  if (rc < 0) return rc;
  if (!want || m->passive || !m->n_txt || !m->started) return 0;
  uint64_t due = now_ms + 20 + randombytes_uniform(101); /* 20-120 ms */
  if (m->responded && due < m->last_response + 1000) due = m->last_response + 1000;
  if (!m->pending || due < m->response_due) m->response_due = due;
  m->pending |= want;
  return 0;
}

/* What one packet says about one instance. */
typedef struct inst {
  char label[64];
  uint32_t ttl;
  bool has_ttl;
  bool has_dnsaddr;
  char id[PEERID_STR_MAX];
  uint16_t port;
  dns_name target;
  bool has_srv;
} inst;

typedef struct ip_rec {
  dns_name name;
  uint8_t ip[16];
  bool v6;
} ip_rec;

typedef struct rx {
  mdns *m;
  inst insts[MDNS_MAX_INSTANCES];
  size_t n_insts;
  ip_rec ips[MAX_IPS * 2];
  size_t n_ips;
  mdns_peer *peers;
  size_t max, n;
} rx;

static inst *find_inst(rx *x, const char *label, bool create) {
  for (size_t i = 0; i < x->n_insts; i++)
    if (strcmp(x->insts[i].label, label) == 0) return &x->insts[i];
  if (!create || x->n_insts == MDNS_MAX_INSTANCES) return NULL;
  inst *in = &x->insts[x->n_insts++];
  memset(in, 0, sizeof *in);
  snprintf(in->label, sizeof in->label, "%s", label);
  return in;
}

static void inst_ttl(inst *in, uint32_t ttl) {
  if (!in->has_ttl || ttl < in->ttl) in->ttl = ttl;
  in->has_ttl = true;
}

/* "dnsaddr=" or "dnsaddr<digits>=": returns the value offset, 0 if not such a string. */
static size_t dnsaddr_prefix(const uint8_t *s, size_t n) {
  static const char k[] = "dnsaddr";
  size_t kl = sizeof k - 1;
  if (n <= kl || memcmp(s, k, kl) != 0) return 0;
  size_t i = kl;
  while (i < n && s[i] >= '0' && s[i] <= '9') i++;
  return (i < n && s[i] == '=') ? i + 1 : 0;
}

static mdns_peer *peer_for(rx *x, const peerid *id, const inst *in) {
  for (size_t i = 0; i < x->n; i++)
    if (peerid_equal(&x->peers[i].id, id)) return &x->peers[i];
  if (x->n == x->max) return NULL;
  mdns_peer *p = &x->peers[x->n];
  memset(p, 0, sizeof *p);
  p->id = *id;
  if (peerid_to_string(id, p->peer_id, sizeof p->peer_id)) return NULL;
  snprintf(p->instance, sizeof p->instance, "%s", in->label);
  p->ttl_s = in->ttl;
  x->n++;
  return p;
}

static void peer_add_addr(rx *x, mdns_peer *p, const multiaddr *ma) {
  if (!mdns_addr_acceptable(ma, x->m->allow_loopback) || p->n_addrs == MDNS_MAX_ADDRS) {
    p->n_dropped++;
    return;
  }
  for (size_t i = 0; i < p->n_addrs; i++)
    if (multiaddr_equal(&p->addrs[i], ma)) return;
  p->addrs[p->n_addrs++] = *ma;
}

/* dnsaddr strings of one TXT record of instance `in`. */
static void take_dnsaddrs(rx *x, inst *in, const dns_rr *rr) {
  size_t off = 0;
  const uint8_t *s;
  size_t sl;
  while (dns_txt_next(rr->rdata, rr->rdlen, &off, &s, &sl) == 1) {
    size_t v = dnsaddr_prefix(s, sl);
    if (!v) continue;
    in->has_dnsaddr = true;
    char text[TXT_MAX + 1];
    memcpy(text, s + v, sl - v);
    text[sl - v] = 0;
    multiaddr ma;
    peerid id;
    if (multiaddr_parse(text, &ma) || multiaddr_get_peerid(&ma, &id)) continue;
    if (peerid_equal(&id, &x->m->self)) continue;
    mdns_peer *p = peer_for(x, &id, in);
    if (!p) continue;
    multiaddr_strip_p2p(&ma, &ma);
    peer_add_addr(x, p, &ma);
  }
}

static int handle_response(mdns *m, const uint8_t *pkt, size_t len, mdns_peer *peers, size_t max, size_t *n_peers) {
  rx *x = calloc(1, sizeof *x);
  if (!x) return -ENOMEM;
  x->m = m;
  x->peers = peers;
  x->max = max;
  dns_reader r;
  dns_rr rr;
  int rc = dns_reader_init(&r, pkt, len);
  char label[64];
  /* Pass 1: instances, their TTLs, SRV and id= data, and address records. */
  while (rc == 0 && (rc = dns_reader_rr(&r, &rr)) == 1) {
    rc = 0;
    if (!class_ok(rr.klass)) continue;
    if (rr.type == DNS_TYPE_PTR && dns_name_equal(&rr.name, &m->service)) {
      if (!dns_name_split_first(&rr.target, &m->service, label, sizeof label)) continue;
      inst *in = find_inst(x, label, true);
      if (in) inst_ttl(in, rr.ttl);
    } else if ((rr.type == DNS_TYPE_TXT || rr.type == DNS_TYPE_SRV) &&
               dns_name_split_first(&rr.name, &m->service, label, sizeof label)) {
      inst *in = find_inst(x, label, true);
      if (!in) continue;
      inst_ttl(in, rr.ttl);
      if (rr.type == DNS_TYPE_SRV) {
        in->has_srv = true;
        in->port = rr.srv_port;
        in->target = rr.target;
        continue;
      }
      size_t off = 0;
      const uint8_t *s;
      size_t sl;
      int t;
      while ((t = dns_txt_next(rr.rdata, rr.rdlen, &off, &s, &sl)) == 1)
        if (sl > 3 && sl - 3 < sizeof in->id && memcmp(s, "id=", 3) == 0) {
          memcpy(in->id, s + 3, sl - 3);
          in->id[sl - 3] = 0;
        }
      if (t < 0) rc = -EINVAL;
    } else if ((rr.type == DNS_TYPE_A || rr.type == DNS_TYPE_AAAA) && x->n_ips < MAX_IPS * 2) {
      ip_rec *ip = &x->ips[x->n_ips++];
      ip->name = rr.name;
      ip->v6 = rr.type == DNS_TYPE_AAAA;
      memcpy(ip->ip, rr.rdata, ip->v6 ? 16 : 4);
    }
  }
  if (rc < 0) goto out;
  /* Pass 2: dnsaddr strings. */
  rc = dns_reader_init(&r, pkt, len);
  while (rc == 0 && (rc = dns_reader_rr(&r, &rr)) == 1) {
    rc = 0;
    if (rr.type != DNS_TYPE_TXT || !class_ok(rr.klass) ||
        !dns_name_split_first(&rr.name, &m->service, label, sizeof label) || strcmp(label, m->name) == 0)
      continue;
    inst *in = find_inst(x, label, false);
    if (in) take_dnsaddrs(x, in, &rr);
  }
  if (rc < 0) goto out;
  /* Pass 3: instances with no dnsaddr string: id= + SRV port + the target's A/AAAA. */
  for (size_t i = 0; i < x->n_insts; i++) {
    inst *in = &x->insts[i];
    if (in->has_dnsaddr || !in->has_srv || !in->id[0] || strcmp(in->label, m->name) == 0) continue;
    peerid id;
    if (peerid_parse(in->id, strlen(in->id), &id) || peerid_equal(&id, &m->self)) continue;
    mdns_peer *p = peer_for(x, &id, in);
    if (!p) continue;
    for (size_t k = 0; k < x->n_ips; k++) {
      if (!dns_name_equal(&x->ips[k].name, &in->target)) continue;
      multiaddr ma = {0};
      uint8_t port[2] = {(uint8_t)(in->port >> 8), (uint8_t)in->port};
      if (multiaddr_append(&ma, x->ips[k].v6 ? MA_IP6 : MA_IP4, x->ips[k].ip, x->ips[k].v6 ? 16 : 4) ||
          multiaddr_append(&ma, MA_TCP, port, 2))
        continue;
      peer_add_addr(x, p, &ma);
    }
  }
  /* A peer none of whose addresses passed the filter is not news (unless it says goodbye). */
  size_t kept = 0;
  for (size_t i = 0; i < x->n; i++)
    if (peers[i].n_addrs || peers[i].ttl_s == 0) {
      if (kept != i) peers[kept] = peers[i];
      kept++;
    }
  rc = 0;
  *n_peers = kept;
out:
  if (rc < 0) *n_peers = 0;
  free(x);
  return rc;
}

int mdns_handle(mdns *m, const uint8_t *pkt, size_t len, uint64_t now_ms, mdns_peer *peers, size_t max,
                size_t *n_peers) {
  *n_peers = 0;
  dns_reader r;
  int rc = dns_reader_init(&r, pkt, len);
  if (rc) return rc;
  if (r.hdr.flags & DNS_FLAG_QR) return handle_response(m, pkt, len, peers, max, n_peers);
  /* Queries carry opcode 0; anything else (updates, notifies) is not for us. */
  if ((r.hdr.flags & 0x7800) != 0) return 0;
  return handle_query(m, &r, now_ms);
}
