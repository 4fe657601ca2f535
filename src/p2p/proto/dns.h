/* dns.h — DNS message reader and writer (RFC 1035 §3-4, with the Multicast DNS details of
 * RFC 6762: the unicast-response bit of a question, the cache-flush bit of a record, messages
 * up to 9000 bytes). Sans-I/O: bytes in, bytes out; used by the mDNS engine (mdns.h) and the
 * /dnsaddr resolver (dnsaddr.h).
 *
 * Names are kept in uncompressed wire form (dns_name: length-prefixed labels ending with the
 * zero label), so comparison is exact and needs no escaping; dns_name_to_text() makes a
 * printable form for logs.
 *
 * Reading is bounded before anything is trusted: message size (DNS_MAX_MSG), label length
 * (≤ 63), name length (≤ 255 on the wire), compression pointers (each must point strictly
 * before the label that holds it, at most DNS_MAX_PTR_HOPS per name, so no loop is
 * possible), section counts (≤ DNS_MAX_RECORDS in all), and every RDATA must lie inside the
 * message. The reader allocates nothing; record data points into the caller's packet.
 *
 * Writing: dns_writer appends to a caller-owned byte array of fixed capacity and compresses
 * names against the names it wrote before (up to DNS_WRITER_MAX_SUFFIXES label suffixes).
 *
 * Plain values, nothing allocated; thread-safe (no shared state). */
#ifndef PEERMCP_P2P_PROTO_DNS_H
#define PEERMCP_P2P_PROTO_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_MAX_MSG 9000          /* RFC 6762 §17: the largest mDNS message */
#define DNS_HEADER_LEN 12
#define DNS_MAX_NAME 255          /* wire form, including length bytes and the zero label */
#define DNS_MAX_LABEL 63
#define DNS_MAX_PTR_HOPS 16       /* compression pointers followed in one name */
#define DNS_MAX_RECORDS 256       /* questions + answers + authorities + additionals */
#define DNS_NAME_TEXT_MAX (4 * DNS_MAX_NAME + 1) /* dns_name_to_text() buffer, escapes included */
#define DNS_WRITER_MAX_SUFFIXES 48 /* name suffixes remembered for compression */

enum {
  DNS_TYPE_A = 1, DNS_TYPE_PTR = 12, DNS_TYPE_TXT = 16, DNS_TYPE_AAAA = 28, DNS_TYPE_SRV = 33,
  DNS_TYPE_ANY = 255,
};
enum { DNS_CLASS_IN = 1, DNS_CLASS_ANY = 255 };
/* Top bit of a question's class (QU, RFC 6762 §5.4) or a record's class (cache flush, §10.2). */
#define DNS_CLASS_TOP_BIT 0x8000u
enum { DNS_FLAG_QR = 0x8000, DNS_FLAG_AA = 0x0400, DNS_FLAG_TC = 0x0200 };

typedef enum dns_section {
  DNS_SEC_QUESTION = 0, DNS_SEC_ANSWER, DNS_SEC_AUTHORITY, DNS_SEC_ADDITIONAL,
} dns_section;

typedef struct dns_name {
  uint8_t len;                /* bytes used in wire[], including the zero label (≥ 1) */
  uint8_t wire[DNS_MAX_NAME];
} dns_name;

typedef struct dns_header {
  uint16_t id, flags;
  uint16_t qdcount, ancount, nscount, arcount;
} dns_header;

typedef struct dns_question {
  dns_name name;
  uint16_t type;
  uint16_t klass;             /* without the QU bit */
  bool unicast_response;      /* QU bit */
} dns_question;

typedef struct dns_rr {
  dns_section section;
  dns_name name;
  uint16_t type;
  uint16_t klass;             /* without the cache-flush bit */
  bool cache_flush;
  uint32_t ttl;
  const uint8_t *rdata;       /* points into the packet */
  uint16_t rdlen;
  /* Decoded for PTR (target) and SRV (target + fields); A/AAAA: rdata holds 4/16 bytes
   * (checked). Other types: only rdata. */
  dns_name target;
  uint16_t srv_priority, srv_weight, srv_port;
} dns_rr;

/* ---- names ---- */

/* "a.b.c" (or "a.b.c.") → wire form. Labels 1..63 bytes, no escapes. 0 or -EINVAL. */
int dns_name_from_text(const char *text, dns_name *out) __attribute__((warn_unused_result));
/* Wire form → "a.b.c" (no trailing dot; "." for the root). Bytes outside printable ASCII,
 * '.' and '\\' inside a label are escaped as \DDD / \. / \\. cap ≥ DNS_NAME_TEXT_MAX always
 * suffices. 0 or -ENOSPC. */
int dns_name_to_text(const dns_name *n, char *out, size_t cap) __attribute__((warn_unused_result));
/* Equal ignoring ASCII case (RFC 1035 §2.3.3). */
bool dns_name_equal(const dns_name *a, const dns_name *b);
/* n = <one label>.<suffix>: copies that first label (NUL-terminated, cap ≥ 64) and returns
 * true. */
bool dns_name_split_first(const dns_name *n, const dns_name *suffix, char *label, size_t cap);
/* out = label.suffix. 0 or -EINVAL (label empty, over 63 bytes, or the name too long). */
int dns_name_prepend(const char *label, size_t label_len, const dns_name *suffix, dns_name *out)
    __attribute__((warn_unused_result));

/* ---- reader ---- */

typedef struct dns_reader {
  const uint8_t *msg;
  size_t len;
  size_t off;                 /* next unread byte */
  dns_header hdr;
  uint32_t remaining[4];      /* records left per section */
  dns_section sec;            /* section of the next record */
  int err;                    /* sticky: once negative, every call returns it */
} dns_reader;

/* Reads the header. 0, -EMSGSIZE (over DNS_MAX_MSG), -EINVAL (short, or counts above
 * DNS_MAX_RECORDS or impossible for the size). */
int dns_reader_init(dns_reader *r, const uint8_t *msg, size_t len) __attribute__((warn_unused_result));
/* Next question (questions come first). 1 = *q filled, 0 = no more questions, -EINVAL. */
int dns_reader_question(dns_reader *r, dns_question *q) __attribute__((warn_unused_result));
/* Next resource record of any later section (remaining questions are skipped first).
 * 1 = *rr filled, 0 = end of message, -EINVAL malformed. */
int dns_reader_rr(dns_reader *r, dns_rr *rr) __attribute__((warn_unused_result));

/* Iterates the character-strings of TXT rdata: start with *off = 0. 1 = *s and *slen set (may be
 * empty), 0 = end, -EINVAL if a string runs past the rdata. */
int dns_txt_next(const uint8_t *rdata, size_t rdlen, size_t *off, const uint8_t **s, size_t *slen)
    __attribute__((warn_unused_result));

/* ---- writer ---- */

typedef struct dns_writer {
  uint8_t *out;
  size_t cap;
  size_t len;
  uint16_t counts[4];
  dns_section sec;            /* sections must be written in order */
  size_t n_sfx;
  struct { uint16_t off; uint8_t len; uint8_t wire[DNS_MAX_NAME]; } sfx[DNS_WRITER_MAX_SUFFIXES];
  int err;                    /* sticky */
} dns_writer;

/* Starts a message in out[0..cap) (cap ≥ DNS_HEADER_LEN); the header is completed by
 * dns_writer_finish(). */
void dns_writer_init(dns_writer *w, uint8_t *out, size_t cap, uint16_t id, uint16_t flags);
/* Appends a question. klass may carry DNS_CLASS_TOP_BIT (QU). */
int dns_writer_question(dns_writer *w, const dns_name *name, uint16_t type, uint16_t klass)
    __attribute__((warn_unused_result));
/* Appends a record to section sec (ANSWER, AUTHORITY or ADDITIONAL; never back to an earlier
 * section). klass may carry DNS_CLASS_TOP_BIT (cache flush). The rdata forms: */
int dns_writer_ptr(dns_writer *w, dns_section sec, const dns_name *name, uint16_t klass,
                   uint32_t ttl, const dns_name *target) __attribute__((warn_unused_result));
/* TXT with n character-strings (each ≤ 255 bytes; n ≥ 1). */
int dns_writer_txt(dns_writer *w, dns_section sec, const dns_name *name, uint16_t klass, uint32_t ttl,
                   const uint8_t *const *strs, const size_t *lens, size_t n)
    __attribute__((warn_unused_result));
/* SRV priority weight port target (the target is compressed). */
int dns_writer_srv(dns_writer *w, dns_section sec, const dns_name *name, uint16_t klass, uint32_t ttl,
                   uint16_t priority, uint16_t weight, uint16_t port, const dns_name *target)
    __attribute__((warn_unused_result));
/* Any record with raw rdata (A, AAAA, …; names inside are not compressed). */
int dns_writer_raw(dns_writer *w, dns_section sec, const dns_name *name, uint16_t type, uint16_t klass,
                   uint32_t ttl, const uint8_t *rdata, uint16_t rdlen) __attribute__((warn_unused_result));
/* Writes the section counts into the header. Returns the message length, or the sticky
 * error -EINVAL (bad argument or section order). A question or record that does not fit
 * returns -ENOSPC and is taken back whole; that is not sticky (the message stays well formed
 * and a smaller record may still fit). */
int dns_writer_finish(dns_writer *w) __attribute__((warn_unused_result));

#endif
