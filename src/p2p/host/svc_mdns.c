/* svc_mdns.c — mDNS sockets, interfaces and timer around the engine. See svc_mdns.h. */
#include "p2p/host/svc_mdns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "p2p/host/peers.h"
#include "p2p/proto/dns.h"
#include "util/log.h"

#define MAX_IFS 16
#define MAX_LOCAL_ADDRS 32

struct p2p_mdns {
  p2p_host *h;
  uv_loop_t *loop;
  p2p_mdns_config cfg;
  char *iface;
  mdns *eng;
  uv_udp_t u4, u6;
  bool has4, has6;
  unsigned if4[MAX_IFS];
  size_t n4;
  unsigned if6[MAX_IFS];
  size_t n6;
  uv_timer_t timer;
  int open_handles;
  bool started, closing;
  p2p_mdns_peer_fn fn;
  void *ud;
  p2p_mdns_stats st;
  void (*done)(void *);
  void *done_ud;
  uint8_t rbuf[DNS_MAX_MSG];
  uint8_t wbuf[MDNS_MAX_OUT];
  mdns_peer peers[MDNS_MAX_INSTANCES];
};

int p2p_mdns_new(p2p_host *h, uv_loop_t *loop, const p2p_mdns_config *cfg, p2p_mdns_peer_fn fn, void *ud,
                 p2p_mdns **out) {
  *out = NULL;
  p2p_mdns *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->h = h;
  m->loop = loop;
  if (cfg) m->cfg = *cfg;
  if (!m->cfg.port) m->cfg.port = MDNS_PORT;
  m->fn = fn;
  m->ud = ud;
  if (m->cfg.interface && !(m->iface = strdup(m->cfg.interface))) {
    free(m);
    return -ENOMEM;
  }
  m->cfg.interface = m->iface;
  int rc = mdns_new(&m->cfg.engine, p2p_host_peer_id(h), &m->eng);
  if (rc) {
    free(m->iface);
    free(m);
    return rc;
  }
  *out = m;
  return 0;
}

const char *p2p_mdns_peer_name(const p2p_mdns *m) { return mdns_peer_name(m->eng); }

void p2p_mdns_get_stats(const p2p_mdns *m, p2p_mdns_stats *out) {
  *out = m->st;
  out->interfaces_v4 = (uint32_t)m->n4;
  out->interfaces_v6 = (uint32_t)m->n6;
}

/* ---------------------------------------------------------------- interfaces */

static bool if_wanted(const p2p_mdns *m, const struct ifaddrs *a) {
  if (!a->ifa_addr || !(a->ifa_flags & IFF_UP) || !(a->ifa_flags & IFF_MULTICAST)) return false;
  return !m->iface || strcmp(a->ifa_name, m->iface) == 0;
}

static void add_if(unsigned *list, size_t *n, unsigned idx) {
  if (!idx) return;
  for (size_t i = 0; i < *n; i++)
    if (list[i] == idx) return;
  if (*n < MAX_IFS) list[(*n)++] = idx;
}

/* ---------------------------------------------------------------- sending */

static void send_all(p2p_mdns *m, const uint8_t *pkt, size_t len) {
  if (m->has4) {
    int fd;
    if (uv_fileno((uv_handle_t *)&m->u4, &fd) == 0) {
      struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(m->cfg.port)};
      inet_pton(AF_INET, MDNS_GROUP_V4, &to.sin_addr);
      for (size_t i = 0; i < m->n4; i++) {
        struct ip_mreqn mr = {.imr_ifindex = (int)m->if4[i]};
        if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof mr) != 0 ||
            sendto(fd, pkt, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to) < 0)
          m->st.send_errors++;
        else
          m->st.packets_out++;
      }
    }
  }
  if (m->has6) {
    int fd;
    if (uv_fileno((uv_handle_t *)&m->u6, &fd) == 0) {
      struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(m->cfg.port)};
      inet_pton(AF_INET6, MDNS_GROUP_V6, &to.sin6_addr);
      for (size_t i = 0; i < m->n6; i++) {
        unsigned idx = m->if6[i];
        to.sin6_scope_id = idx;
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &idx, sizeof idx) != 0 ||
            sendto(fd, pkt, len, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to) < 0)
          m->st.send_errors++;
        else
          m->st.packets_out++;
      }
    }
  }
}

static void timer_cb(uv_timer_t *t);

static void arm(p2p_mdns *m) {
  if (m->closing || !m->started) return;
  uint64_t d = mdns_next_deadline(m->eng);
  if (d == UINT64_MAX) {
    uv_timer_stop(&m->timer);
    return;
  }
  uint64_t now = uv_now(m->loop);
  uv_timer_start(&m->timer, timer_cb, d > now ? d - now : 0, 0);
}

static void timer_cb(uv_timer_t *t) {
  p2p_mdns *m = t->data;
  int n;
  while ((n = mdns_poll(m->eng, uv_now(m->loop), m->wbuf, sizeof m->wbuf)) > 0) send_all(m, m->wbuf, (size_t)n);
  if (n < 0) log_warn("mdns: packet not built", "{s:i}", "error", n);
  arm(m);
}

/* ---------------------------------------------------------------- receiving */

static void alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *b) {
  p2p_mdns *m = hd->data;
  (void)suggested;
  b->base = (char *)m->rbuf;
  b->len = sizeof m->rbuf;
}

static void recv_cb(uv_udp_t *u, ssize_t nread, const uv_buf_t *b, const struct sockaddr *from, unsigned flags) {
  p2p_mdns *m = u->data;
  (void)b;
  if (nread <= 0 || !from || m->closing) return;
  m->st.packets_in++;
  if (flags & UV_UDP_PARTIAL) {
    m->st.malformed++;
    return;
  }
  size_t n = 0;
  int rc = mdns_handle(m->eng, m->rbuf, (size_t)nread, uv_now(m->loop), m->peers, MDNS_MAX_INSTANCES, &n);
  if (rc) m->st.malformed++;
  for (size_t i = 0; i < n; i++) {
    mdns_peer *p = &m->peers[i];
    if (p->ttl_s) {
      char texts[MDNS_MAX_ADDRS][MULTIADDR_STR_MAX];
      const char *ptrs[MDNS_MAX_ADDRS];
      size_t k = 0;
      for (size_t a = 0; a < p->n_addrs; a++)
        if (multiaddr_to_string(&p->addrs[a], texts[k], sizeof texts[k]) == 0) {
          ptrs[k] = texts[k];
          k++;
        }
      int added = p2p_host_add_peer_addrs(m->h, p->peer_id, ptrs, k, P2P_SRC_MDNS);
      (void)added; /* a full peerstore only loses this hint */
    }
    m->st.peers_reported++;
    if (m->fn) m->fn(m, p, m->ud);
    if (m->closing) return;
  }
  arm(m);
}

/* ---------------------------------------------------------------- sockets */

static int open_v4(p2p_mdns *m, struct ifaddrs *ifs) {
  for (struct ifaddrs *a = ifs; a; a = a->ifa_next)
    if (if_wanted(m, a) && a->ifa_addr->sa_family == AF_INET) add_if(m->if4, &m->n4, if_nametoindex(a->ifa_name));
  if (!m->n4) return -EADDRNOTAVAIL;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1, ttl = 255;
  unsigned char loop = 1, mttl = 255;
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(m->cfg.port), .sin_addr.s_addr = htonl(INADDR_ANY)};
  int rc = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      setsockopt(fd, IPPROTO_IP, IP_MULTICAST_TTL, &mttl, sizeof mttl) != 0 ||
      setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &loop, sizeof loop) != 0 ||
      setsockopt(fd, IPPROTO_IP, IP_TTL, &ttl, sizeof ttl) != 0)
    rc = -errno;
  size_t joined = 0;
  for (size_t i = 0; !rc && i < m->n4; i++) {
    struct ip_mreqn mr = {.imr_ifindex = (int)m->if4[i]};
    inet_pton(AF_INET, MDNS_GROUP_V4, &mr.imr_multiaddr);
    if (setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof mr) == 0 || errno == EADDRINUSE)
      m->if4[joined++] = m->if4[i];
  }
  m->n4 = joined;
  if (!rc && !joined) rc = -EADDRNOTAVAIL;
  if (!rc) rc = uv_udp_init(m->loop, &m->u4);
  if (rc) {
    close(fd);
    m->n4 = 0;
    return rc;
  }
  m->u4.data = m;
  m->open_handles++;
  m->has4 = true;
  if ((rc = uv_udp_open(&m->u4, fd)) != 0) {
    close(fd);
    return rc;
  }
  return uv_udp_recv_start(&m->u4, alloc_cb, recv_cb);
}

static int open_v6(p2p_mdns *m, struct ifaddrs *ifs) {
  for (struct ifaddrs *a = ifs; a; a = a->ifa_next)
    if (if_wanted(m, a) && a->ifa_addr->sa_family == AF_INET6) add_if(m->if6, &m->n6, if_nametoindex(a->ifa_name));
  if (!m->n6) return -EADDRNOTAVAIL;
  int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1, hops = 255;
  struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(m->cfg.port), .sin6_addr = in6addr_any};
  int rc = 0;
  if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, &hops, sizeof hops) != 0 ||
      setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &one, sizeof one) != 0)
    rc = -errno;
  size_t joined = 0;
  for (size_t i = 0; !rc && i < m->n6; i++) {
    struct ipv6_mreq mr = {.ipv6mr_interface = m->if6[i]};
    inet_pton(AF_INET6, MDNS_GROUP_V6, &mr.ipv6mr_multiaddr);
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof mr) == 0 || errno == EADDRINUSE)
      m->if6[joined++] = m->if6[i];
  }
  m->n6 = joined;
  if (!rc && !joined) rc = -EADDRNOTAVAIL;
  if (!rc) rc = uv_udp_init(m->loop, &m->u6);
  if (rc) {
    close(fd);
    m->n6 = 0;
    return rc;
  }
  m->u6.data = m;
  m->open_handles++;
  m->has6 = true;
  if ((rc = uv_udp_open(&m->u6, fd)) != 0) {
    close(fd);
    return rc;
  }
  return uv_udp_recv_start(&m->u6, alloc_cb, recv_cb);
}

/* ---------------------------------------------------------------- addresses */

void p2p_mdns_refresh_addrs(p2p_mdns *m) {
  const char *listen[16];
  size_t nl = p2p_host_listen_addrs(m->h, listen, 16);
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) != 0) ifs = NULL;
  char (*texts)[MULTIADDR_STR_MAX] = calloc(2 * MDNS_MAX_ADDRS, MULTIADDR_STR_MAX);
  const char *ptrs[2 * MDNS_MAX_ADDRS];
  size_t n = 0;
  for (size_t i = 0; texts && i < nl && n < 2 * MDNS_MAX_ADDRS; i++) {
    multiaddr ma;
    if (multiaddr_parse(listen[i], &ma)) continue;
    size_t off = 0;
    multiaddr_component c, tcp;
    if (multiaddr_next(&ma, &off, &c) != 1 || multiaddr_next(&ma, &off, &tcp) != 1 || tcp.code != MA_TCP) continue;
    unsigned port = (unsigned)(tcp.value[0] << 8 | tcp.value[1]);
    static const uint8_t zero[16];
    bool any4 = c.code == MA_IP4 && memcmp(c.value, zero, 4) == 0;
    bool any6 = c.code == MA_IP6 && memcmp(c.value, zero, 16) == 0;
    if (!any4 && !any6) {
      snprintf(texts[n], MULTIADDR_STR_MAX, "%s", listen[i]);
      ptrs[n] = texts[n];
      n++;
      continue;
    }
    for (struct ifaddrs *a = ifs; a && n < 2 * MDNS_MAX_ADDRS; a = a->ifa_next) {
      if (!a->ifa_addr || !(a->ifa_flags & IFF_UP)) continue;
      if (m->iface && strcmp(a->ifa_name, m->iface) != 0) continue;
      char ip[INET6_ADDRSTRLEN];
      if (any4 && a->ifa_addr->sa_family == AF_INET &&
          inet_ntop(AF_INET, &((struct sockaddr_in *)a->ifa_addr)->sin_addr, ip, sizeof ip))
        snprintf(texts[n], MULTIADDR_STR_MAX, "/ip4/%s/tcp/%u", ip, port);
      else if (any6 && a->ifa_addr->sa_family == AF_INET6 &&
               inet_ntop(AF_INET6, &((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr, ip, sizeof ip))
        snprintf(texts[n], MULTIADDR_STR_MAX, "/ip6/%s/tcp/%u", ip, port);
      else
        continue;
      ptrs[n] = texts[n];
      n++;
    }
  }
  if (ifs) freeifaddrs(ifs);
  int kept = texts ? mdns_set_addrs(m->eng, ptrs, n) : -ENOMEM;
  free(texts);
  if (kept == 0 && !m->cfg.engine.passive)
    log_debug("mdns: no address to announce (loopback only without allow_loopback?)", "{s:i}", "listen", (int)nl);
  arm(m);
}

void p2p_mdns_query_now(p2p_mdns *m) {
  if (!m->started || m->closing) return;
  mdns_query_now(m->eng, uv_now(m->loop));
  arm(m);
}

/* ---------------------------------------------------------------- life cycle */

int p2p_mdns_start(p2p_mdns *m) {
  if (m->started) return -EALREADY;
  struct ifaddrs *ifs = NULL;
  if (getifaddrs(&ifs) != 0) return -errno;
  int rc = uv_timer_init(m->loop, &m->timer);
  if (rc) {
    freeifaddrs(ifs);
    return rc;
  }
  m->timer.data = m;
  m->open_handles++;
  int r4 = m->cfg.no_ipv4 ? -EADDRNOTAVAIL : open_v4(m, ifs);
  int r6 = m->cfg.no_ipv6 ? -EADDRNOTAVAIL : open_v6(m, ifs);
  freeifaddrs(ifs);
  if (r4 && r6) {
    log_warn("mdns: no socket", "{s:i, s:i}", "ipv4", r4, "ipv6", r6);
    return r4 != -EADDRNOTAVAIL ? r4 : r6 != -EADDRNOTAVAIL ? r6 : -EADDRNOTAVAIL;
  }
  m->started = true;
  p2p_mdns_refresh_addrs(m);
  mdns_start(m->eng, uv_now(m->loop));
  arm(m);
  log_info("mdns started", "{s:s, s:i, s:i}", "peer_name", mdns_peer_name(m->eng), "ipv4_interfaces", (int)m->n4,
           "ipv6_interfaces", (int)m->n6);
  return 0;
}

static void closed_cb(uv_handle_t *hd) {
  p2p_mdns *m = hd->data;
  if (--m->open_handles > 0) return;
  void (*done)(void *) = m->done;
  void *ud = m->done_ud;
  mdns_free(m->eng);
  free(m->iface);
  free(m);
  if (done) done(ud);
}

void p2p_mdns_close(p2p_mdns *m, void (*done)(void *ud), void *ud) {
  if (m->closing) return;
  m->closing = true;
  m->done = done;
  m->done_ud = ud;
  if (m->started) {
    int n = mdns_goodbye(m->eng, m->wbuf, sizeof m->wbuf);
    if (n > 0) send_all(m, m->wbuf, (size_t)n);
  }
  if (m->open_handles == 0) {
    mdns_free(m->eng);
    free(m->iface);
    free(m);
    if (done) done(ud);
    return;
  }
  if (m->has4) uv_close((uv_handle_t *)&m->u4, closed_cb);
  if (m->has6) uv_close((uv_handle_t *)&m->u6, closed_cb);
  uv_close((uv_handle_t *)&m->timer, closed_cb);
}
