/* multiaddr.c — multiaddr binary ⇄ text (multiformats/multiaddr, libp2p addressing spec).
 * See multiaddr.h for the protocol list. */
#include "p2p/core/multiaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "p2p/core/multibase.h"
#include "p2p/core/varint.h"

typedef enum {
  K_NONE,   /* no value */
  K_IP4,    /* 4 bytes */
  K_IP6,    /* 16 bytes */
  K_PORT,   /* 2 bytes big-endian */
  K_U8,     /* 1 byte decimal (ipcidr) */
  K_U64,    /* 8 bytes big-endian decimal (memory) */
  K_NAME,   /* var: a non-empty string without '/' (dns*, sni, ip6zone) */
  K_PATH,   /* var: a filesystem path (unix): text is one percent-encoded segment, as js-libp2p
             * writes it (/unix/%2Ftmp%2Fx.sock); the older slash form (/unix/tmp/x.sock) is read
             * when the next segment names no protocol, up to a /p2p/ or /ipfs/ segment */
  K_P2P,    /* var: PeerId multihash */
  K_MBASE,  /* var: multihash printed as multibase (certhash) */
  K_PCT,    /* var: percent-encoded text (http-path) */
} value_kind;

typedef struct proto_def {
  uint32_t code;
  const char *name;
  value_kind kind;
} proto_def;

static const proto_def protos[] = {
    {MA_IP4, "ip4", K_IP4},
    {MA_TCP, "tcp", K_PORT},
    {MA_DCCP, "dccp", K_PORT},
    {MA_IP6, "ip6", K_IP6},
    {MA_IP6ZONE, "ip6zone", K_NAME},
    {MA_IPCIDR, "ipcidr", K_U8},
    {MA_DNS, "dns", K_NAME},
    {MA_DNS4, "dns4", K_NAME},
    {MA_DNS6, "dns6", K_NAME},
    {MA_DNSADDR, "dnsaddr", K_NAME},
    {MA_SCTP, "sctp", K_PORT},
    {MA_UDP, "udp", K_PORT},
    {MA_WEBRTC_DIRECT, "webrtc-direct", K_NONE},
    {MA_WEBRTC, "webrtc", K_NONE},
    {MA_P2P_CIRCUIT, "p2p-circuit", K_NONE},
    {MA_UNIX, "unix", K_PATH},
    {MA_P2P, "p2p", K_P2P},
    {MA_HTTPS, "https", K_NONE},
    {MA_TLS, "tls", K_NONE},
    {MA_SNI, "sni", K_NAME},
    {MA_NOISE, "noise", K_NONE},
    {MA_QUIC, "quic", K_NONE},
    {MA_QUIC_V1, "quic-v1", K_NONE},
    {MA_WEBTRANSPORT, "webtransport", K_NONE},
    {MA_CERTHASH, "certhash", K_MBASE},
    {MA_WS, "ws", K_NONE},
    {MA_WSS, "wss", K_NONE},
    {MA_HTTP, "http", K_NONE},
    {MA_HTTP_PATH, "http-path", K_PCT},
    {MA_MEMORY, "memory", K_U64},
};

static const proto_def *by_code(uint64_t code) {
  for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
    if (protos[i].code == code) return &protos[i];
  return NULL;
}

static const proto_def *by_name(const char *s, size_t n) {
  if (n == 4 && memcmp(s, "ipfs", 4) == 0) return by_code(MA_P2P); /* legacy alias */
  for (size_t i = 0; i < sizeof protos / sizeof protos[0]; i++)
    if (strlen(protos[i].name) == n && memcmp(protos[i].name, s, n) == 0) return &protos[i];
  return NULL;
}

static size_t fixed_size(value_kind k) {
  switch (k) {
  case K_NONE: return 0;
  case K_IP4: return 4;
  case K_IP6: return 16;
  case K_PORT: return 2;
  case K_U8: return 1;
  case K_U64: return 8;
  default: return SIZE_MAX; /* variable */
  }
}

/* Checks a binary value of a variable-size protocol. */
static int valid_var_value(value_kind k, const uint8_t *v, size_t n) {
  switch (k) {
  case K_NAME:
    if (n == 0 || memchr(v, '/', n) || memchr(v, 0, n)) return -EINVAL;
    return 0;
  case K_PATH:
  case K_PCT:
    if (n == 0 || memchr(v, 0, n)) return -EINVAL;
    return 0;
  case K_P2P: {
    peerid id;
    return peerid_from_bytes(v, n, &id) ? -EINVAL : 0;
  }
  case K_MBASE: {
    uint64_t code, len;
    size_t u1, u2;
    if (varint_decode(v, n, &code, &u1) || varint_decode(v + u1, n - u1, &len, &u2)) return -EINVAL;
    return len == n - u1 - u2 ? 0 : -EINVAL;
  }
  default: return -EINVAL;
  }
}

/* Reads one component at *off. 1 = component, 0 = end, -EINVAL = malformed. */
static int next_component(const uint8_t *b, size_t len, size_t *off, multiaddr_component *c) {
  if (*off >= len) return 0;
  uint64_t code, vlen;
  size_t used;
  size_t o = *off;
  if (varint_decode(b + o, len - o, &code, &used)) return -EINVAL;
  o += used;
  const proto_def *d = by_code(code);
  if (!d) return -EINVAL;
  size_t fs = fixed_size(d->kind);
  if (fs != SIZE_MAX) {
    vlen = fs;
  } else {
    if (varint_decode(b + o, len - o, &vlen, &used)) return -EINVAL;
    o += used;
  }
  if (vlen > len - o) return -EINVAL;
  if (fs == SIZE_MAX && valid_var_value(d->kind, b + o, (size_t)vlen)) return -EINVAL;
  c->code = d->code;
  c->name = d->name;
  c->value = b + o;
  c->value_len = (size_t)vlen;
  *off = o + (size_t)vlen;
  return 1;
}

int multiaddr_next(const multiaddr *ma, size_t *offset, multiaddr_component *c) {
  return next_component(ma->bytes, ma->len, offset, c);
}

int multiaddr_from_bytes(const uint8_t *p, size_t n, multiaddr *out) {
  if (n > MULTIADDR_MAX_BYTES) return -E2BIG;
  if (n == 0) return -EINVAL; /* an empty address names nothing (and p may be NULL) */
  size_t off = 0;
  multiaddr_component c;
  int rc;
  while ((rc = next_component(p, n, &off, &c)) == 1) {
  }
  if (rc < 0) return rc;
  memcpy(out->bytes, p, n);
  out->len = n;
  return 0;
}

int multiaddr_append(multiaddr *ma, uint32_t code, const uint8_t *value, size_t len) {
  const proto_def *d = by_code(code);
  if (!d) return -EINVAL;
  size_t fs = fixed_size(d->kind);
  uint8_t hdr[2 * VARINT_MAX_BYTES];
  size_t h = varint_encode(code, hdr);
  if (fs != SIZE_MAX) {
    if (len != fs) return -EINVAL;
  } else {
    if (valid_var_value(d->kind, value, len)) return -EINVAL;
    if (len > MULTIADDR_MAX_BYTES) return -E2BIG;
    h += varint_encode(len, hdr + h);
  }
  if (ma->len + h + len > MULTIADDR_MAX_BYTES) return -E2BIG;
  memcpy(ma->bytes + ma->len, hdr, h);
  if (len) memcpy(ma->bytes + ma->len + h, value, len);
  ma->len += h + len;
  return 0;
}

int multiaddr_append_p2p(multiaddr *ma, const peerid *id) {
  return multiaddr_append(ma, MA_P2P, id->bytes, id->len);
}

/* Decimal without sign; 0 on success. */
static int parse_u64(const char *s, size_t n, uint64_t max, uint64_t *out) {
  if (n == 0 || n > 20) return -EINVAL;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -EINVAL;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10) return -EINVAL;
    v = v * 10 + d;
  }
  if (v > max) return -EINVAL;
  *out = v;
  return 0;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Percent-encoded text → bytes (http-path, unix): no NUL, not empty. */
static int pct_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *outlen) {
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    if (o >= cap) return -E2BIG;
    if (s[i] == '%') {
      if (i + 2 >= n) return -EINVAL;
      int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
      if (hi < 0 || lo < 0) return -EINVAL;
      out[o++] = (uint8_t)(hi << 4 | lo);
      i += 2;
    } else {
      out[o++] = (uint8_t)s[i];
    }
  }
  *outlen = o;
  return valid_var_value(K_PCT, out, o);
}

/* Text value → binary value for one protocol. */
static int value_from_text(const proto_def *d, const char *s, size_t n, uint8_t *out, size_t cap, size_t *outlen) {
  char tmp[MULTIADDR_STR_MAX];
  uint64_t v;
  if (n >= sizeof tmp) return -E2BIG;
  switch (d->kind) {
  case K_IP4:
  case K_IP6:
    memcpy(tmp, s, n);
    tmp[n] = 0;
    if (inet_pton(d->kind == K_IP4 ? AF_INET : AF_INET6, tmp, out) != 1) return -EINVAL;
    *outlen = d->kind == K_IP4 ? 4 : 16;
    return 0;
  case K_PORT:
    if (parse_u64(s, n, 65535, &v)) return -EINVAL;
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)v;
    *outlen = 2;
    return 0;
  case K_U8:
    if (parse_u64(s, n, 255, &v)) return -EINVAL;
    out[0] = (uint8_t)v;
    *outlen = 1;
    return 0;
  case K_U64:
    if (parse_u64(s, n, UINT64_MAX, &v)) return -EINVAL;
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(v >> (56 - 8 * i));
    *outlen = 8;
    return 0;
  case K_NAME:
    if (n == 0 || n > cap) return -EINVAL;
    memcpy(out, s, n);
    *outlen = n;
    return valid_var_value(d->kind, out, n);
  case K_PATH:
    if (n == 0) return -EINVAL;
    if (s[0] == '/') { /* the older slash form (multiaddr_parse): the path as written */
      if (n > cap) return -E2BIG;
      memcpy(out, s, n);
      *outlen = n;
      return valid_var_value(d->kind, out, n);
    }
    return pct_decode(s, n, out, cap, outlen); /* one percent-encoded segment */
  case K_P2P: {
    peerid id;
    if (peerid_parse(s, n, &id)) return -EINVAL;
    if (id.len > cap) return -E2BIG;
    memcpy(out, id.bytes, id.len);
    *outlen = id.len;
    return 0;
  }
  case K_MBASE:
    if (multibase_decode(s, n, out, cap, outlen)) return -EINVAL;
    return valid_var_value(d->kind, out, *outlen);
  case K_PCT: return pct_decode(s, n, out, cap, outlen);
  case K_NONE: return -EINVAL;
  }
  return -EINVAL;
}

int multiaddr_parse(const char *text, multiaddr *out) {
  size_t n = strnlen(text, MULTIADDR_STR_MAX + 1);
  if (n > MULTIADDR_STR_MAX) return -E2BIG;
  if (n == 0 || text[0] != '/') return -EINVAL;
  if (n > 1 && text[n - 1] == '/') n--; /* one trailing slash is tolerated */
  multiaddr ma = {0};
  size_t i = 1;
  while (i < n) {
    const char *name = text + i;
    const char *slash = memchr(name, '/', n - i);
    size_t nl = slash ? (size_t)(slash - name) : n - i;
    const proto_def *d = by_name(name, nl);
    if (!d) return -EINVAL;
    i += nl + (slash ? 1 : 0);
    uint8_t val[MULTIADDR_MAX_BYTES];
    size_t vl = 0;
    if (d->kind != K_NONE) {
      if (!slash || i > n) return -EINVAL; /* value missing */
      const char *vs = text + i;
      size_t vn;
      if (d->kind == K_PATH) {
        /* The value is one percent-encoded segment (js-libp2p's form) when what follows it is
         * nothing or another protocol; otherwise it is the older form, the path itself with its
         * leading slash, up to a /p2p/ or /ipfs/ segment (/unix/tmp/x.sock/p2p/<id>). */
        const char *s1 = memchr(vs, '/', n - i);
        size_t end = s1 ? (size_t)(s1 - text) : n;
        if (s1) {
          const char *nx = s1 + 1, *s2 = memchr(nx, '/', (size_t)(text + n - nx));
          if (!by_name(nx, s2 ? (size_t)(s2 - nx) : (size_t)(text + n - nx))) { /* the older form */
            end = n;
            for (const char *p = s1; p; p = memchr(p + 1, '/', (size_t)(text + n - p - 1))) {
              size_t k = (size_t)(p - text);
              if ((n - k > 5 && memcmp(p, "/p2p/", 5) == 0) || (n - k > 6 && memcmp(p, "/ipfs/", 6) == 0)) {
                end = k;
                break;
              }
            }
            vs--; /* the value keeps its leading slash */
          }
        }
        vn = (size_t)(text + end - vs);
        i = end + (end < n ? 1 : 0);
      } else {
        const char *s2 = memchr(vs, '/', n - i);
        vn = s2 ? (size_t)(s2 - vs) : n - i;
        i += vn + (s2 ? 1 : 0);
      }
      int rc = value_from_text(d, vs, vn, val, sizeof val, &vl);
      if (rc) return rc;
    }
    int rc = multiaddr_append(&ma, d->code, val, vl);
    if (rc) return rc;
  }
  if (ma.len == 0) return -EINVAL;
  *out = ma;
  return 0;
}

/* Appends text to out at *o; -ENOSPC if it does not fit (one byte kept for the NUL). */
static int put(char *out, size_t cap, size_t *o, const char *s, size_t n) {
  if (*o + n + 1 > cap) return -ENOSPC;
  memcpy(out + *o, s, n);
  *o += n;
  out[*o] = 0;
  return 0;
}

static int value_to_text(const multiaddr_component *c, value_kind k, char *out, size_t cap, size_t *o) {
  char tmp[MULTIADDR_STR_MAX];
  size_t tl = 0;
  switch (k) {
  case K_NONE: return 0;
  case K_IP4:
  case K_IP6:
    if (!inet_ntop(k == K_IP4 ? AF_INET : AF_INET6, c->value, tmp, sizeof tmp)) return -EINVAL;
    tl = strlen(tmp);
    break;
  case K_PORT: tl = (size_t)snprintf(tmp, sizeof tmp, "%u", (unsigned)(c->value[0] << 8 | c->value[1])); break;
  case K_U8: tl = (size_t)snprintf(tmp, sizeof tmp, "%u", (unsigned)c->value[0]); break;
  case K_U64: {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | c->value[i];
    tl = (size_t)snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    break;
  }
  case K_NAME:
    if (c->value_len >= sizeof tmp) return -ENOSPC;
    memcpy(tmp, c->value, c->value_len);
    tl = c->value_len;
    break;
  case K_PATH: /* one segment, percent-encoded as JavaScript's encodeURIComponent (js-libp2p) */
  case K_PCT:
    for (size_t i = 0; i < c->value_len; i++) {
      uint8_t ch = c->value[i];
      if (tl + 4 > sizeof tmp) return -ENOSPC;
      if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
          ch == '.' || ch == '_' || ch == '~' || (k == K_PATH && ch && strchr("!*'()", ch))) {
        tmp[tl++] = (char)ch;
      } else {
        tl += (size_t)snprintf(tmp + tl, 4, "%%%02X", ch);
      }
    }
    break;
  case K_P2P: {
    peerid id;
    if (peerid_from_bytes(c->value, c->value_len, &id)) return -EINVAL;
    if (peerid_to_string(&id, tmp, sizeof tmp)) return -ENOSPC;
    tl = strlen(tmp);
    break;
  }
  case K_MBASE:
    if (multibase_encode('u', c->value, c->value_len, tmp, sizeof tmp, &tl)) return -ENOSPC;
    break;
  }
  int rc = put(out, cap, o, "/", 1);
  return rc ? rc : put(out, cap, o, tmp, tl);
}

int multiaddr_to_string(const multiaddr *ma, char *out, size_t cap) {
  size_t off = 0, o = 0;
  multiaddr_component c;
  int rc;
  if (cap == 0) return -ENOSPC;
  out[0] = 0;
  while ((rc = next_component(ma->bytes, ma->len, &off, &c)) == 1) {
    const proto_def *d = by_code(c.code);
    if ((rc = put(out, cap, &o, "/", 1)) || (rc = put(out, cap, &o, d->name, strlen(d->name)))) return rc;
    if ((rc = value_to_text(&c, d->kind, out, cap, &o))) return rc;
  }
  return rc;
}

int multiaddr_get_peerid(const multiaddr *ma, peerid *out) {
  size_t off = 0;
  multiaddr_component c;
  int rc, found = 0;
  while ((rc = next_component(ma->bytes, ma->len, &off, &c)) == 1) {
    if (c.code == MA_P2P) {
      if (peerid_from_bytes(c.value, c.value_len, out)) return -EINVAL;
      found = 1;
    }
  }
  if (rc < 0) return rc;
  return found ? 0 : -ENOENT;
}

void multiaddr_strip_p2p(const multiaddr *ma, multiaddr *out) {
  size_t off = 0, last = 0, end = ma->len;
  multiaddr_component c;
  while (next_component(ma->bytes, ma->len, &off, &c) == 1) {
    if (c.code == MA_P2P && off == ma->len) end = last;
    last = off;
  }
  if (out != ma) memcpy(out->bytes, ma->bytes, end);
  out->len = end;
}

int multiaddr_to_sockaddr(const multiaddr *ma, struct sockaddr_storage *ss, socklen_t *sslen) {
  size_t off = 0;
  multiaddr_component ip, port, rest;
  if (next_component(ma->bytes, ma->len, &off, &ip) != 1) return -EAFNOSUPPORT;
  if (next_component(ma->bytes, ma->len, &off, &port) != 1 || port.code != MA_TCP) return -EAFNOSUPPORT;
  int rc = next_component(ma->bytes, ma->len, &off, &rest);
  if (rc < 0 || (rc == 1 && (rest.code != MA_P2P || off != ma->len))) return -EAFNOSUPPORT;
  memset(ss, 0, sizeof *ss);
  uint16_t p = (uint16_t)(port.value[0] << 8 | port.value[1]);
  if (ip.code == MA_IP4) {
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    sin->sin_family = AF_INET;
    sin->sin_port = htons(p);
    memcpy(&sin->sin_addr, ip.value, 4);
    *sslen = sizeof *sin;
    return 0;
  }
  if (ip.code == MA_IP6) {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(p);
    memcpy(&sin6->sin6_addr, ip.value, 16);
    *sslen = sizeof *sin6;
    return 0;
  }
  return -EAFNOSUPPORT;
}

int multiaddr_unix_path(const multiaddr *ma, char *out, size_t cap) {
  size_t off = 0;
  multiaddr_component u, rest;
  if (next_component(ma->bytes, ma->len, &off, &u) != 1 || u.code != MA_UNIX) return -EAFNOSUPPORT;
  int rc = next_component(ma->bytes, ma->len, &off, &rest);
  if (rc < 0 || (rc == 1 && (rest.code != MA_P2P || off != ma->len))) return -EAFNOSUPPORT;
  if (u.value_len >= cap) return -ENAMETOOLONG;
  memcpy(out, u.value, u.value_len);
  out[u.value_len] = 0;
  return 0;
}

bool multiaddr_is_unix(const multiaddr *ma) {
  size_t off = 0;
  multiaddr_component c;
  while (next_component(ma->bytes, ma->len, &off, &c) == 1)
    if (c.code == MA_UNIX) return true;
  return false;
}

int multiaddr_from_unix_path(const char *path, multiaddr *out) {
  out->len = 0;
  return multiaddr_append(out, MA_UNIX, (const uint8_t *)path, strlen(path));
}

int multiaddr_from_sockaddr(const struct sockaddr *sa, multiaddr *out) {
  uint8_t port[2];
  out->len = 0;
  int rc;
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
    uint16_t p = ntohs(sin->sin_port);
    port[0] = (uint8_t)(p >> 8), port[1] = (uint8_t)p;
    if ((rc = multiaddr_append(out, MA_IP4, (const uint8_t *)&sin->sin_addr, 4))) return rc;
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    uint16_t p = ntohs(sin6->sin6_port);
    port[0] = (uint8_t)(p >> 8), port[1] = (uint8_t)p;
    if ((rc = multiaddr_append(out, MA_IP6, (const uint8_t *)&sin6->sin6_addr, 16))) return rc;
  } else {
    return -EAFNOSUPPORT;
  }
  return multiaddr_append(out, MA_TCP, port, 2);
}

bool multiaddr_equal(const multiaddr *a, const multiaddr *b) {
  return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}
