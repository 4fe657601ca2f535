/* dns.c — DNS message reader and writer (RFC 1035 §3-4, RFC 6762 bits). See dns.h. */
#include "p2p/proto/dns.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t rd32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void wr16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static void wr32(uint8_t *p, uint32_t v) {
  wr16(p, (uint16_t)(v >> 16));
  wr16(p + 2, (uint16_t)v);
}
static uint8_t lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c; }

/* ---- names ---- */

int dns_name_from_text(const char *text, dns_name *out) {
  size_t n = strlen(text);
  if (n && text[n - 1] == '.') n--;
  size_t o = 0;
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && text[j] != '.') j++;
    size_t l = j - i;
    if (l == 0 || l > DNS_MAX_LABEL || o + 1 + l + 1 > DNS_MAX_NAME) return -EINVAL;
    out->wire[o++] = (uint8_t)l;
    memcpy(out->wire + o, text + i, l);
    o += l;
    i = j + 1;
    if (j < n && i == n) return -EINVAL; /* "a..": empty last label */
  }
  out->wire[o++] = 0;
  out->len = (uint8_t)o;
  return 0;
}

int dns_name_to_text(const dns_name *n, char *out, size_t cap) {
  size_t o = 0;
  size_t i = 0;
#define PUT(c)                       \
  do {                               \
    if (o + 1 >= cap) return -ENOSPC; \
    out[o++] = (char)(c);            \
  } while (0)
  while (i < n->len && n->wire[i]) {
    uint8_t l = n->wire[i++];
    if (o) PUT('.');
    for (uint8_t k = 0; k < l && i < n->len; k++, i++) {
      uint8_t c = n->wire[i];
      if (c == '.' || c == '\\') {
        PUT('\\');
        PUT(c);
      } else if (c < 0x21 || c > 0x7e) {
        PUT('\\');
        PUT('0' + c / 100);
        PUT('0' + c / 10 % 10);
        PUT('0' + c % 10);
      } else {
        PUT(c);
      }
    }
  }
  if (o == 0) PUT('.');
#undef PUT
  if (cap == 0) return -ENOSPC;
  out[o] = 0;
  return 0;
}

static bool wire_equal_ci(const uint8_t *a, const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

bool dns_name_equal(const dns_name *a, const dns_name *b) {
  return a->len == b->len && wire_equal_ci(a->wire, b->wire, a->len);
}

bool dns_name_split_first(const dns_name *n, const dns_name *suffix, char *label, size_t cap) {
  if (n->len < 2 || n->wire[0] == 0) return false;
  size_t l = n->wire[0];
  if (1 + l >= n->len || l + 1 > cap) return false;
  size_t rest = n->len - 1 - l;
  if (rest != suffix->len || !wire_equal_ci(n->wire + 1 + l, suffix->wire, rest)) return false;
  if (memchr(n->wire + 1, 0, l)) return false;
  memcpy(label, n->wire + 1, l);
  label[l] = 0;
  return true;
}

int dns_name_prepend(const char *label, size_t label_len, const dns_name *suffix, dns_name *out) {
  if (label_len == 0 || label_len > DNS_MAX_LABEL || 1 + label_len + suffix->len > DNS_MAX_NAME)
    return -EINVAL;
  dns_name tmp;
  tmp.wire[0] = (uint8_t)label_len;
  memcpy(tmp.wire + 1, label, label_len);
  memcpy(tmp.wire + 1 + label_len, suffix->wire, suffix->len);
  tmp.len = (uint8_t)(1 + label_len + suffix->len);
  *out = tmp;
  return 0;
}

/* Reads a possibly compressed name at msg[*off]. On success *off is just past the name as it
 * appears at that position (a pointer ends it). Each pointer must point strictly before every
 * byte of this name read so far, so the walk always moves backwards and ends. */
static int read_name(const uint8_t *msg, size_t len, size_t *off, dns_name *out) {
  size_t pos = *off;
  size_t lowest = pos; /* smallest offset visited */
  size_t after = 0;    /* where the name ends in the record stream, once known */
  unsigned hops = 0;
  size_t o = 0;
  for (;;) {
    if (pos >= len) return -EINVAL;
    uint8_t c = msg[pos];
    if ((c & 0xC0) == 0xC0) {
      if (pos + 1 >= len) return -EINVAL;
      size_t target = (size_t)((c & 0x3F) << 8 | msg[pos + 1]);
      if (++hops > DNS_MAX_PTR_HOPS || target >= lowest) return -EINVAL;
      if (!after) after = pos + 2;
      pos = lowest = target;
      continue;
    }
    if (c & 0xC0) return -EINVAL; /* 0x40 / 0x80: extended label types (obsolete) */
    if (o + 1 + c > DNS_MAX_NAME) return -EINVAL;
    if (c == 0) {
      out->wire[o++] = 0;
      out->len = (uint8_t)o;
      *off = after ? after : pos + 1;
      return 0;
    }
    if (pos + 1 + c > len) return -EINVAL;
    memcpy(out->wire + o, msg + pos, 1u + c);
    o += 1u + c;
    pos += 1u + c;
  }
}

/* ---- reader ---- */

int dns_reader_init(dns_reader *r, const uint8_t *msg, size_t len) {
  memset(r, 0, sizeof *r);
  r->msg = msg;
  r->len = len;
  r->err = -EINVAL;
  if (len > DNS_MAX_MSG) return r->err = -EMSGSIZE;
  if (len < DNS_HEADER_LEN) return r->err;
  r->hdr.id = rd16(msg);
  r->hdr.flags = rd16(msg + 2);
  r->hdr.qdcount = rd16(msg + 4);
  r->hdr.ancount = rd16(msg + 6);
  r->hdr.nscount = rd16(msg + 8);
  r->hdr.arcount = rd16(msg + 10);
  uint32_t nrr = (uint32_t)r->hdr.ancount + r->hdr.nscount + r->hdr.arcount;
  if (r->hdr.qdcount + nrr > DNS_MAX_RECORDS) return r->err;
  /* A question takes at least 5 bytes (root name + type + class), a record at least 11. */
  if ((size_t)r->hdr.qdcount * 5 + (size_t)nrr * 11 > len - DNS_HEADER_LEN) return r->err;
  r->remaining[DNS_SEC_QUESTION] = r->hdr.qdcount;
  r->remaining[DNS_SEC_ANSWER] = r->hdr.ancount;
  r->remaining[DNS_SEC_AUTHORITY] = r->hdr.nscount;
  r->remaining[DNS_SEC_ADDITIONAL] = r->hdr.arcount;
  r->off = DNS_HEADER_LEN;
  r->sec = DNS_SEC_QUESTION;
  r->err = 0;
  return 0;
}

int dns_reader_question(dns_reader *r, dns_question *q) {
  if (r->err) return r->err;
  if (r->sec != DNS_SEC_QUESTION || r->remaining[DNS_SEC_QUESTION] == 0) return 0;
  size_t off = r->off;
  if (read_name(r->msg, r->len, &off, &q->name) || off + 4 > r->len) return r->err = -EINVAL;
  q->type = rd16(r->msg + off);
  uint16_t k = rd16(r->msg + off + 2);
  q->unicast_response = (k & DNS_CLASS_TOP_BIT) != 0;
  q->klass = k & (uint16_t)~DNS_CLASS_TOP_BIT;
  r->off = off + 4;
  r->remaining[DNS_SEC_QUESTION]--;
  return 1;
}

int dns_reader_rr(dns_reader *r, dns_rr *rr) {
  if (r->err) return r->err;
  dns_question skip;
  int rc;
  while ((rc = dns_reader_question(r, &skip)) == 1) {
  }
  if (rc < 0) return rc;
  while (r->sec <= DNS_SEC_ADDITIONAL && r->remaining[r->sec] == 0) {
    if (r->sec == DNS_SEC_ADDITIONAL) return 0;
    r->sec++;
  }
  size_t off = r->off;
  memset(rr, 0, sizeof *rr);
  rr->section = r->sec;
  if (read_name(r->msg, r->len, &off, &rr->name) || off + 10 > r->len) return r->err = -EINVAL;
  rr->type = rd16(r->msg + off);
  uint16_t k = rd16(r->msg + off + 2);
  rr->cache_flush = (k & DNS_CLASS_TOP_BIT) != 0;
  rr->klass = k & (uint16_t)~DNS_CLASS_TOP_BIT;
  rr->ttl = rd32(r->msg + off + 4);
  rr->rdlen = rd16(r->msg + off + 8);
  off += 10;
  if (off + rr->rdlen > r->len) return r->err = -EINVAL;
  rr->rdata = r->msg + off;
  size_t rend = off + rr->rdlen;
  size_t p = off;
  switch (rr->type) {
  case DNS_TYPE_PTR:
    /* The target may be compressed against anything earlier, but must end inside rdata. */
    if (read_name(r->msg, rend, &p, &rr->target) || p != rend) return r->err = -EINVAL;
    break;
  case DNS_TYPE_SRV:
    if (rr->rdlen < 7) return r->err = -EINVAL;
    rr->srv_priority = rd16(rr->rdata);
    rr->srv_weight = rd16(rr->rdata + 2);
    rr->srv_port = rd16(rr->rdata + 4);
    p = off + 6;
    if (read_name(r->msg, rend, &p, &rr->target) || p != rend) return r->err = -EINVAL;
    break;
  case DNS_TYPE_A:
    if (rr->rdlen != 4) return r->err = -EINVAL;
    break;
  case DNS_TYPE_AAAA:
    if (rr->rdlen != 16) return r->err = -EINVAL;
    break;
  default:
    break;
  }
  r->off = rend;
  r->remaining[r->sec]--;
  return 1;
}

int dns_txt_next(const uint8_t *rdata, size_t rdlen, size_t *off, const uint8_t **s, size_t *slen) {
  if (*off >= rdlen) return 0;
  size_t l = rdata[*off];
  if (*off + 1 + l > rdlen) return -EINVAL;
  *s = rdata + *off + 1;
  *slen = l;
  *off += 1 + l;
  return 1;
}

/* ---- writer ---- */

void dns_writer_init(dns_writer *w, uint8_t *out, size_t cap, uint16_t id, uint16_t flags) {
  /* The suffix table is large and needs no clearing (n_sfx bounds what is read). */
  memset(w, 0, offsetof(dns_writer, sfx));
  w->err = 0;
  w->out = out;
  w->cap = cap;
  w->sec = DNS_SEC_QUESTION;
  if (cap < DNS_HEADER_LEN) {
    w->err = -ENOSPC;
    return;
  }
  memset(out, 0, DNS_HEADER_LEN);
  wr16(out, id);
  wr16(out + 2, flags);
  w->len = DNS_HEADER_LEN;
}

static int w_room(dns_writer *w, size_t n) {
  if (w->err) return w->err;
  if (w->len + n > w->cap) return w->err = -ENOSPC;
  return 0;
}

/* Writes name, pointing at the longest suffix already written when there is one. */
static int w_name(dns_writer *w, const dns_name *n) {
  if (n->len < 1 || n->wire[n->len - 1] != 0) return w->err = -EINVAL;
  size_t i = 0;
  while (i < n->len) {
    size_t slen = n->len - i;
    if (slen == 1) {
      if (w_room(w, 1)) return w->err;
      w->out[w->len++] = 0;
      return 0;
    }
    for (size_t e = 0; e < w->n_sfx; e++) {
      if (w->sfx[e].len == slen && memcmp(w->sfx[e].wire, n->wire + i, slen) == 0) {
        if (w_room(w, 2)) return w->err;
        wr16(w->out + w->len, (uint16_t)(0xC000u | w->sfx[e].off));
        w->len += 2;
        return 0;
      }
    }
    size_t l = n->wire[i];
    if (l == 0 || l > DNS_MAX_LABEL || i + 1 + l >= n->len) return w->err = -EINVAL;
    if (w_room(w, 1 + l)) return w->err;
    if (w->len < 0x4000 && w->n_sfx < DNS_WRITER_MAX_SUFFIXES) {
      w->sfx[w->n_sfx].off = (uint16_t)w->len;
      w->sfx[w->n_sfx].len = (uint8_t)slen;
      memcpy(w->sfx[w->n_sfx].wire, n->wire + i, slen);
      w->n_sfx++;
    }
    memcpy(w->out + w->len, n->wire + i, 1 + l);
    w->len += 1 + l;
    i += 1 + l;
  }
  return w->err = -EINVAL;
}

/* On failure the record is taken back whole, so a full packet stays well formed; running
 * out of room is then not sticky (a smaller record may still fit). */
#define RR_GUARD_BEGIN                                \
  size_t mark_ = w->len, nsfx_ = w->n_sfx;            \
  dns_section sec_ = w->sec;
#define RR_FAIL()                                     \
  do {                                                \
    int e_ = w->err;                                  \
    w->len = mark_;                                   \
    w->n_sfx = nsfx_;                                 \
    w->sec = sec_;                                    \
    if (e_ == -ENOSPC) w->err = 0;                    \
    return e_;                                        \
  } while (0)

int dns_writer_question(dns_writer *w, const dns_name *name, uint16_t type, uint16_t klass) {
  if (w->err) return w->err;
  if (w->sec != DNS_SEC_QUESTION || w->counts[DNS_SEC_QUESTION] == UINT16_MAX) return w->err = -EINVAL;
  RR_GUARD_BEGIN
  if (w_name(w, name) || w_room(w, 4)) RR_FAIL();
  wr16(w->out + w->len, type);
  wr16(w->out + w->len + 2, klass);
  w->len += 4;
  w->counts[DNS_SEC_QUESTION]++;
  return 0;
}

/* Record header up to and including rdlength (filled by rr_end). */
static int rr_begin(dns_writer *w, dns_section sec, const dns_name *name, uint16_t type, uint16_t klass,
                    uint32_t ttl, size_t *rdlen_at) {
  if (w->err) return w->err;
  if (sec < DNS_SEC_ANSWER || sec > DNS_SEC_ADDITIONAL || sec < w->sec || w->counts[sec] == UINT16_MAX)
    return w->err = -EINVAL;
  w->sec = sec;
  if (w_name(w, name) || w_room(w, 10)) return w->err;
  wr16(w->out + w->len, type);
  wr16(w->out + w->len + 2, klass);
  wr32(w->out + w->len + 4, ttl);
  *rdlen_at = w->len + 8;
  w->len += 10;
  return 0;
}

static int rr_end(dns_writer *w, dns_section sec, size_t rdlen_at) {
  size_t rdlen = w->len - rdlen_at - 2;
  if (rdlen > UINT16_MAX) return w->err = -EINVAL;
  wr16(w->out + rdlen_at, (uint16_t)rdlen);
  w->counts[sec]++;
  return 0;
}

int dns_writer_ptr(dns_writer *w, dns_section sec, const dns_name *name, uint16_t klass, uint32_t ttl,
                   const dns_name *target) {
  RR_GUARD_BEGIN
  size_t at = 0;
  if (rr_begin(w, sec, name, DNS_TYPE_PTR, klass, ttl, &at) || w_name(w, target)) RR_FAIL();
  return rr_end(w, sec, at);
}

int dns_writer_txt(dns_writer *w, dns_section sec, const dns_name *name, uint16_t klass, uint32_t ttl,
                   const uint8_t *const *strs, const size_t *lens, size_t n) {
  if (w->err) return w->err;
  if (n == 0) return w->err = -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (lens[i] > 255) return w->err = -EINVAL;
  RR_GUARD_BEGIN
  size_t at = 0;
  if (rr_begin(w, sec, name, DNS_TYPE_TXT, klass, ttl, &at)) RR_FAIL();
  for (size_t i = 0; i < n; i++) {
    if (w_room(w, 1 + lens[i])) RR_FAIL();
    w->out[w->len++] = (uint8_t)lens[i];
    if (lens[i]) memcpy(w->out + w->len, strs[i], lens[i]);
    w->len += lens[i];
  }
  return rr_end(w, sec, at);
}

int dns_writer_srv(dns_writer *w, dns_section sec, const dns_name *name, uint16_t klass, uint32_t ttl,
                   uint16_t priority, uint16_t weight, uint16_t port, const dns_name *target) {
  RR_GUARD_BEGIN
  size_t at = 0;
  if (rr_begin(w, sec, name, DNS_TYPE_SRV, klass, ttl, &at) || w_room(w, 6)) RR_FAIL();
  wr16(w->out + w->len, priority);
  wr16(w->out + w->len + 2, weight);
  wr16(w->out + w->len + 4, port);
  w->len += 6;
  if (w_name(w, target)) RR_FAIL();
  return rr_end(w, sec, at);
}

int dns_writer_raw(dns_writer *w, dns_section sec, const dns_name *name, uint16_t type, uint16_t klass,
                   uint32_t ttl, const uint8_t *rdata, uint16_t rdlen) {
  RR_GUARD_BEGIN
  size_t at = 0;
  if (rr_begin(w, sec, name, type, klass, ttl, &at) || w_room(w, rdlen)) RR_FAIL();
  if (rdlen) memcpy(w->out + w->len, rdata, rdlen);
  w->len += rdlen;
  return rr_end(w, sec, at);
}

int dns_writer_finish(dns_writer *w) {
  if (w->err) return w->err;
  assert(w->len <= w->cap && w->len >= DNS_HEADER_LEN);
  for (int s = 0; s < 4; s++) wr16(w->out + 4 + 2 * s, w->counts[s]);
  return (int)w->len;
}
