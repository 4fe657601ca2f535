/* dial_error.c — dial and stream errors as sentences (see dial_error.h). */
#include "service/dial_error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "p2p/core/multiaddr.h"
#include "p2p/core/peerid.h"

/* ---------- targets and dial errors ---------- */

/* The protocol names multiaddr.c knows (for "unknown protocol" messages). */
static const char *const k_ma_names[] = {"ip4", "ip6", "ip6zone", "ipcidr", "tcp", "udp", "dccp", "sctp", "dns",
                                         "dns4", "dns6", "dnsaddr", "unix", "p2p", "ipfs", "p2p-circuit", "sni",
                                         "certhash", "http-path", "quic", "quic-v1", "ws", "wss", "webtransport",
                                         "webrtc", "webrtc-direct", "tls", "noise", "http", "https", "memory"};

static bool known_name(const char *s, size_t n) {
  for (size_t i = 0; i < sizeof k_ma_names / sizeof k_ma_names[0]; i++)
    if (strlen(k_ma_names[i]) == n && memcmp(k_ma_names[i], s, n) == 0) return true;
  return false;
}

/* Whether t's first n bytes parse as a multiaddr (every prefix tried is a prefix of t). */
static bool prefix_parses(const char *t, size_t n) {
  char buf[MULTIADDR_STR_MAX + 1];
  multiaddr ma;
  if (n > MULTIADDR_STR_MAX) return false;
  memcpy(buf, t, n);
  buf[n] = 0;
  return multiaddr_parse(buf, &ma) == 0;
}

/* Why multiaddr_parse refuses `t` (which starts with '/'): the first component that is wrong,
 * found by growing a prefix of t one component at a time. */
static void explain_multiaddr(const char *t, char *why, size_t whylen) {
  size_t len = strlen(t);
  if (len > MULTIADDR_STR_MAX) {
    snprintf(why, whylen, "longer than %d characters", MULTIADDR_STR_MAX);
    return;
  }
  size_t pos = 1; /* start of the next protocol name */
  while (pos < len) {
    const char *p = t + pos;
    const char *s = strchr(p, '/');
    int nl = (int)(s ? (size_t)(s - p) : strlen(p));
    if (!known_name(p, (size_t)nl)) {
      snprintf(why, whylen, "unknown protocol \"%.*s\" after \"%.*s\"", nl, p, pos > 1 ? (int)(pos - 1) : 1, t);
      return;
    }
    if (prefix_parses(t, pos + (size_t)nl)) { /* a protocol without a value */
      pos += (size_t)nl + 1;
      continue;
    }
    if (!s || !s[1]) {
      snprintf(why, whylen, "/%.*s needs a value", nl, p);
      return;
    }
    const char *v = s + 1;
    const char *ve = strchr(v, '/');
    int vl = (int)(ve ? (size_t)(ve - v) : strlen(v));
    if (!prefix_parses(t, (size_t)(v - t) + (size_t)vl)) {
      const char *hint = "";
      if (nl == 3 && memcmp(p, "tcp", 3) == 0) hint = " (a port is 0..65535)";
      else if (nl == 3 && memcmp(p, "ip4", 3) == 0) hint = " (an IPv4 address such as 127.0.0.1)";
      else if (nl == 3 && memcmp(p, "ip6", 3) == 0) hint = " (an IPv6 address such as ::1)";
      else if (nl == 3 && memcmp(p, "p2p", 3) == 0) hint = " (a PeerId such as 12D3KooW…)";
      snprintf(why, whylen, "\"%.*s\" is not a valid /%.*s value%s", vl, v, nl, p, hint);
      return;
    }
    pos = (size_t)(v - t) + (size_t)vl + 1;
  }
  snprintf(why, whylen, "not a valid multiaddr");
}

const char *svc_target_problem(const char *target, const char *self_id, char *why, size_t whylen) {
  if (!target || !*target) {
    snprintf(why, whylen, "the target is empty");
    return why;
  }
  if (target[0] != '/') {
    peerid id;
    if (peerid_parse(target, strlen(target), &id) != 0) {
      snprintf(why, whylen,
               "\"%s\" is neither a multiaddr (/ip4/HOST/tcp/PORT/p2p/PEERID) nor a PeerId (12D3KooW…, Qm…)", target);
      return why;
    }
    if (self_id && strcmp(self_id, target) == 0) {
      snprintf(why, whylen, "%s is this node's own PeerId (give another node's, or run with its --state-dir)", target);
      return why;
    }
    return NULL;
  }
  multiaddr ma, bare;
  if (multiaddr_parse(target, &ma) != 0) {
    char e[512];
    explain_multiaddr(target, e, sizeof e);
    snprintf(why, whylen, "\"%s\" is not a valid multiaddr: %s", target, e);
    return why;
  }
  /* A relayed address (/…/p2p/<relay>/p2p-circuit/p2p/<peer>): the host's relay client dials
   * it (p2p.relay); the part before /p2p-circuit must be one we can dial. */
  size_t coff = 0;
  multiaddr_component cc;
  bool circuit = false;
  while (!circuit && multiaddr_next(&ma, &coff, &cc) == 1) circuit = cc.code == MA_P2P_CIRCUIT;
  if (circuit) return NULL;
  multiaddr_strip_p2p(&ma, &bare);
  struct sockaddr_storage ss;
  socklen_t sl;
  size_t off = 0;
  multiaddr_component c0, c1, c2;
  bool dns = multiaddr_next(&bare, &off, &c0) == 1 && (c0.code == MA_DNS || c0.code == MA_DNS4 || c0.code == MA_DNS6) &&
             multiaddr_next(&bare, &off, &c1) == 1 && c1.code == MA_TCP && multiaddr_next(&bare, &off, &c2) == 0;
  char upath[128];
  int urc = multiaddr_unix_path(&bare, upath, sizeof upath);
  if (urc == 0 && strlen(upath) >= 108) urc = -ENAMETOOLONG;
  if (urc == -ENAMETOOLONG) {
    snprintf(why, whylen, "%s: a unix socket path must be shorter than 108 bytes (sun_path)", target);
    return why;
  }
  if (!dns && urc != 0 && multiaddr_to_sockaddr(&bare, &ss, &sl) != 0) {
    snprintf(why, whylen,
             "%s: peermcp dials TCP and Unix-domain sockets only: /ip4|ip6|dns|dns4|dns6/HOST/tcp/PORT or "
             "/unix/PATH, optionally /p2p/PEERID",
             target);
    return why;
  }
  peerid id;
  char ids[PEERID_STR_MAX];
  if (self_id && multiaddr_get_peerid(&ma, &id) == 0 && peerid_to_string(&id, ids, sizeof ids) == 0 &&
      strcmp(ids, self_id) == 0) {
    snprintf(why, whylen, "%s names this node's own PeerId (give another node's, or run with its --state-dir)", target);
    return why;
  }
  return NULL;
}

const char *svc_dial_error_code(int err) {
  switch (err) {
  case -EINVAL: return "invalid_target";
  case -ECONNREFUSED: return "connection_refused";
  case -ETIMEDOUT: return "timeout";
  case -EACCES: return "peer_id_mismatch";
  case -EHOSTUNREACH: return "no_known_address";
  case -EPROTONOSUPPORT: return "protocol_not_supported";
  case -EPERM: return "unauthorized";
  case -EDESTADDRREQ: return "credentials_need_peer_id";
  default: return "unreachable";
  }
}

/* The address part of a target, for messages ("/ip4/1.2.3.4/tcp/9710"). */
static const char *addr_of(const char *target, char *buf, size_t n) {
  const char *p = target ? strstr(target, "/p2p/") : NULL;
  if (!target) return "";
  if (!p || p == target) return target;
  snprintf(buf, n, "%.*s", (int)(p - target), target);
  return buf;
}

const char *svc_dial_error_text(p2p_host *host, const char *target, const char *protocol, int err, char *why,
                                size_t whylen) {
  char a[MULTIADDR_STR_MAX];
  const char *addr = addr_of(target, a, sizeof a);
  switch (err) {
  case -EINVAL: {
    if (svc_target_problem(target, host ? p2p_host_peer_id(host) : NULL, why, whylen)) return why;
    snprintf(why, whylen, "%s: invalid target", target);
    return why;
  }
  case -ECONNREFUSED:
    snprintf(why, whylen, "connection refused: nothing listens at %s", addr);
    return why;
  case -ETIMEDOUT:
    snprintf(why, whylen, "timed out: %s did not answer in time", addr);
    return why;
  case -EACCES: {
    p2p_dial_mismatch m;
    if (host && p2p_host_last_mismatch(host, &m) == 0 && m.proved[0])
      snprintf(why, whylen, "wrong peer: the address names PeerId %s, but the peer at %s proved it is %s",
               m.expected, m.addr, m.proved);
    else
      snprintf(why, whylen, "wrong peer: the peer at %s did not prove the PeerId the address names", addr);
    return why;
  }
  case -EHOSTUNREACH:
    if (target && target[0] != '/')
      snprintf(why, whylen,
               "no known address for PeerId %s (give a multiaddr: /ip4/HOST/tcp/PORT/p2p/%s, or run where its "
               "announce file is)",
               target, target);
    else
      snprintf(why, whylen, "no route to %s", addr);
    return why;
  case -EPROTONOSUPPORT:
    snprintf(why, whylen, "the peer at %s does not support %s%s", addr, protocol ? protocol : "the protocol",
             protocol && strcmp(protocol, "/perf/1.0.0") == 0
                 ? " (peermcp serves it only with p2p.enable_perf: true, or PEERMCP_P2P_ENABLE_PERF=1)"
                 : "");
    return why;
  case -EPERM:
    snprintf(why, whylen,
             "the peer at %s refused this node (unauthorized): add this node's PeerId (peermcp id) to its "
             "p2p.trusted_peers, or give both the same token",
             addr);
    return why;
  case -EDESTADDRREQ:
    snprintf(why, whylen,
             "%s has no /p2p/PEERID: the token would go to whoever answers there; add the peer's id "
             "(/p2p/<its `peermcp id`>)",
             target);
    return why;
  case -EAGAIN:
    snprintf(why, whylen, "%s failed a moment ago and is backed off; try again in a few seconds", addr);
    return why;
  case -ECONNRESET:
  case -ECONNABORTED:
  case -EPIPE:
    snprintf(why, whylen, "the connection to %s was closed (%s)", addr, strerror(-err));
    return why;
  case -EMFILE:
    snprintf(why, whylen, "too many connections open on this node to dial %s", addr);
    return why;
  case -ENETUNREACH:
    snprintf(why, whylen, "network unreachable: %s", addr);
    return why;
  default:
    snprintf(why, whylen, "%s: %s", addr, err < 0 ? strerror(-err) : "failed");
    return why;
  }
}
