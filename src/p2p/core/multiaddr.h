/* multiaddr.h — multiaddr binary ⇄ text (multiformats/multiaddr and libp2p addressing spec).
 *
 * Binary form: a sequence of (varint protocol code, value) where the value is fixed-size
 * or varint-length-prefixed. Supported with full value parsing: ip4, ip6, ip6zone, ipcidr,
 * tcp, udp, dccp, sctp, dns, dns4, dns6, dnsaddr, unix, p2p (text accepts base58btc and
 * CIDv1 PeerIds, prints base58btc), p2p-circuit, sni, certhash (multibase text), http-path;
 * no-value protocols quic, quic-v1, ws, wss, webtransport, webrtc, webrtc-direct, tls,
 * noise, http, https, memory(value u64). Unknown codes are rejected.
 *
 * multiaddr is a plain value (fixed-size bytes, no allocation). Every decoder is bounds
 * checked. Thread-safe. */
#ifndef PEERMCP_P2P_CORE_MULTIADDR_H
#define PEERMCP_P2P_CORE_MULTIADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "p2p/core/peerid.h"

#define MULTIADDR_MAX_BYTES 512
#define MULTIADDR_STR_MAX 1024  /* text forms longer than this are refused */

/* Protocol codes (multicodec table). */
enum {
  MA_IP4 = 4, MA_TCP = 6, MA_DCCP = 33, MA_IP6 = 41, MA_IP6ZONE = 42, MA_IPCIDR = 43,
  MA_DNS = 53, MA_DNS4 = 54, MA_DNS6 = 55, MA_DNSADDR = 56, MA_SCTP = 132, MA_UDP = 273,
  MA_WEBRTC_DIRECT = 280, MA_WEBRTC = 281, MA_P2P_CIRCUIT = 290, MA_UNIX = 400, MA_P2P = 421,
  MA_HTTPS = 443, MA_TLS = 448, MA_SNI = 449, MA_NOISE = 454, MA_QUIC = 460, MA_QUIC_V1 = 461,
  MA_WEBTRANSPORT = 465, MA_CERTHASH = 466, MA_WS = 477, MA_WSS = 478, MA_HTTP = 480,
  MA_HTTP_PATH = 481, MA_MEMORY = 777,
};

typedef struct multiaddr {
  size_t len;
  uint8_t bytes[MULTIADDR_MAX_BYTES];
} multiaddr;

/* One component, pointing into the multiaddr it came from. */
typedef struct multiaddr_component {
  uint32_t code;
  const char *name;     /* static protocol name, e.g. "tcp" */
  const uint8_t *value; /* raw binary value (ip4: 4 bytes, tcp: 2 bytes big-endian, p2p: multihash) */
  size_t value_len;
} multiaddr_component;

/* Text → binary. 0, -EINVAL (syntax / unknown protocol / bad value), -E2BIG (too long). */
int multiaddr_parse(const char *text, multiaddr *out) __attribute__((warn_unused_result));
/* Binary → validated multiaddr (copies). 0, -EINVAL (malformed or empty), -E2BIG. */
int multiaddr_from_bytes(const uint8_t *p, size_t n, multiaddr *out) __attribute__((warn_unused_result));
/* Binary → text, NUL-terminated. 0, -ENOSPC, -EINVAL. */
int multiaddr_to_string(const multiaddr *ma, char *out, size_t cap) __attribute__((warn_unused_result));

/* Iterates components: start with *offset = 0; returns 1 and fills c, 0 at the end,
 * -EINVAL on a malformed address. */
int multiaddr_next(const multiaddr *ma, size_t *offset, multiaddr_component *c)
    __attribute__((warn_unused_result));
/* Appends one component with a raw binary value (validated). 0, -EINVAL, -E2BIG. */
int multiaddr_append(multiaddr *ma, uint32_t code, const uint8_t *value, size_t len)
    __attribute__((warn_unused_result));
int multiaddr_append_p2p(multiaddr *ma, const peerid *id) __attribute__((warn_unused_result));

/* The last /p2p/<id> component. 0, -ENOENT. */
int multiaddr_get_peerid(const multiaddr *ma, peerid *out) __attribute__((warn_unused_result));
/* ma without a trailing /p2p/<id> (copy into out; out may equal ma). */
void multiaddr_strip_p2p(const multiaddr *ma, multiaddr *out);

/* /ip4|ip6/<addr>/tcp/<port>[/p2p/<id>] → sockaddr (sockaddr_in or sockaddr_in6).
 * 0, -EAFNOSUPPORT (another shape, e.g. dns or udp). */
int multiaddr_to_sockaddr(const multiaddr *ma, struct sockaddr_storage *ss, socklen_t *sslen)
    __attribute__((warn_unused_result));
/* /unix/<path>[/p2p/<id>] → the path, NUL-terminated, in out[cap]. 0, -EAFNOSUPPORT (another
 * shape), -ENAMETOOLONG (the path needs cap bytes or more). Text forms: see multiaddr.c's K_PATH
 * (/unix/%2Ftmp%2Fx.sock as js-libp2p writes it; /unix/tmp/x.sock is read too). */
int multiaddr_unix_path(const multiaddr *ma, char *out, size_t cap) __attribute__((warn_unused_result));
/* Whether ma has a /unix/ component (an address that means something on one host only). */
bool multiaddr_is_unix(const multiaddr *ma);
/* A path → /unix/<path>. 0, -EINVAL (empty, NUL), -E2BIG. */
int multiaddr_from_unix_path(const char *path, multiaddr *out) __attribute__((warn_unused_result));
/* sockaddr_in/in6 → /ip4|ip6/<addr>/tcp/<port>. 0, -EAFNOSUPPORT. */
int multiaddr_from_sockaddr(const struct sockaddr *sa, multiaddr *out) __attribute__((warn_unused_result));

bool multiaddr_equal(const multiaddr *a, const multiaddr *b);

#endif
