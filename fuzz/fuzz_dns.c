/* fuzz_dns.c — libFuzzer target: the DNS message reader (names, compression pointers, counts,
 * rdata bounds, TXT strings). Invariant: what the reader accepts, the writer re-encodes, and
 * (when that fits a message) the reader reads back with the same questions and records. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "p2p/proto/dns.h"

#define OUT_CAP (128 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dns_reader r;
  if (dns_reader_init(&r, data, size) != 0) return 0;
  static dns_question qs[DNS_MAX_RECORDS];
  static dns_rr rrs[DNS_MAX_RECORDS];
  size_t nq = 0, nr = 0;
  int rc;
  while ((rc = dns_reader_question(&r, &qs[nq])) == 1) {
    char t[DNS_NAME_TEXT_MAX];
    if (dns_name_to_text(&qs[nq].name, t, sizeof t) != 0) abort();
    nq++;
  }
  if (rc < 0) return 0;
  while ((rc = dns_reader_rr(&r, &rrs[nr])) == 1) {
    dns_rr *x = &rrs[nr++];
    if (x->type == DNS_TYPE_TXT) {
      size_t off = 0, sl;
      const uint8_t *s;
      while (dns_txt_next(x->rdata, x->rdlen, &off, &s, &sl) == 1)
        if (s + sl > x->rdata + x->rdlen) abort();
    }
  }
  if (rc < 0) return 0;
  if (nq > r.hdr.qdcount || nr > (size_t)r.hdr.ancount + r.hdr.nscount + r.hdr.arcount) abort();
  uint8_t *out = malloc(OUT_CAP);
  if (!out) return 0;
  dns_writer *w = malloc(sizeof *w);
  if (!w) {
    free(out);
    return 0;
  }
  dns_writer_init(w, out, OUT_CAP, r.hdr.id, r.hdr.flags);
  for (size_t i = 0; i < nq; i++)
    if (dns_writer_question(w, &qs[i].name, qs[i].type,
                            (uint16_t)(qs[i].klass | (qs[i].unicast_response ? DNS_CLASS_TOP_BIT : 0))) != 0)
      abort();
  for (size_t i = 0; i < nr; i++) {
    dns_rr *x = &rrs[i];
    uint16_t k = (uint16_t)(x->klass | (x->cache_flush ? DNS_CLASS_TOP_BIT : 0));
    dns_section sec = x->section == DNS_SEC_QUESTION ? DNS_SEC_ANSWER : x->section;
    int e;
    if (x->type == DNS_TYPE_PTR)
      e = dns_writer_ptr(w, sec, &x->name, k, x->ttl, &x->target);
    else if (x->type == DNS_TYPE_SRV)
      e = dns_writer_srv(w, sec, &x->name, k, x->ttl, x->srv_priority, x->srv_weight, x->srv_port, &x->target);
    else
      e = dns_writer_raw(w, sec, &x->name, x->type, k, x->ttl, x->rdata, x->rdlen);
    if (e != 0) abort();
  }
  int len = dns_writer_finish(w);
  if (len < 0) abort();
  if (len <= DNS_MAX_MSG) {
    dns_reader r2;
    if (dns_reader_init(&r2, out, (size_t)len) != 0) abort();
    dns_question q;
    for (size_t i = 0; i < nq; i++) {
      if (dns_reader_question(&r2, &q) != 1) abort();
      if (q.name.len != qs[i].name.len || memcmp(q.name.wire, qs[i].name.wire, q.name.len) != 0) abort();
      if (q.type != qs[i].type || q.klass != qs[i].klass) abort();
    }
    dns_rr x;
    for (size_t i = 0; i < nr; i++) {
      if (dns_reader_rr(&r2, &x) != 1) abort();
      if (x.type != rrs[i].type || x.ttl != rrs[i].ttl || x.section != rrs[i].section) abort();
      if (x.name.len != rrs[i].name.len || memcmp(x.name.wire, rrs[i].name.wire, x.name.len) != 0) abort();
      if ((x.type == DNS_TYPE_PTR || x.type == DNS_TYPE_SRV) &&
          (x.target.len != rrs[i].target.len || memcmp(x.target.wire, rrs[i].target.wire, x.target.len) != 0))
        abort();
    }
    if (dns_reader_rr(&r2, &x) != 0) abort();
  }
  free(w);
  free(out);
  return 0;
}
