/* frame.c — u32 length-prefixed and NDJSON framing for the service protocols (see frame.h;
 * p2p_tasks_spec.md §2.2–2.3). No I/O: bytes in, JSON objects out. */
#include "service/frame.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mcp/session.h"
#include "util/jparse.h"
#include "util/jwrite.h"

const char *svc_frame_status_str(svc_frame_status st) {
  switch (st) {
  case SVC_FRAME_TOO_LARGE: return "frame_too_large";
  case SVC_FRAME_INVALID_JSON: return "invalid_json";
  case SVC_FRAME_INVALID_MSG: return "invalid_message";
  case SVC_FRAME_NOMEM: return "internal_error";
  case SVC_FRAME_EMPTY: return "empty";
  case SVC_FRAME_TIMEOUT: return "frame_timeout";
  default: return "ok";
  }
}

bool svc_json_has_nul(const json_t *v) {
  return json_is_string(v) && memchr(json_string_value(v), 0, json_string_length(v)) != NULL;
}

/* jansson's nesting ceiling (JSON_PARSER_MAX_DEPTH), kept so the same frames are refused as
 * before util/jparse parsed them. */
#define SVC_FRAME_MAX_DEPTH 2048

/* Parses a complete body. An empty body is invalid JSON (json.loads("") fails). Duplicate keys
 * are refused (an op or a token must not mean one thing to one reader and another to the
 * next); escaped NULs are kept in string values. detail (detail_cap bytes) gets jansson's
 * reason on a refusal. */
static svc_frame_status frame_parse(const uint8_t *p, size_t n, json_t **out, char *detail, size_t detail_cap,
                                    bool *has_nul, int *depth) {
  *out = NULL;
  *has_nul = false;
  *depth = -1;
  detail[0] = 0;
  if (n == 0) return SVC_FRAME_INVALID_JSON;
  /* util/jparse: the hot path's parser (no per-character callback), with jansson's
   * JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL semantics and jansson's nesting ceiling (a message
   * nested deeper than the session's own limit is refused by the session, the stream stays) */
  jparse_error jerr;
  json_t *v;
  unsigned found = 0;
  int rc = jparse_flags((const char *)p, n, SVC_FRAME_MAX_DEPTH, JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, &v, &jerr,
                        &found);
  if (rc == -ENOMEM) return SVC_FRAME_NOMEM; /* our failure, not a verdict on the peer's bytes */
  if (rc != 0) {
    snprintf(detail, detail_cap, "%s (at byte %zu)", jerr.text, jerr.position);
    return SVC_FRAME_INVALID_JSON;
  }
  if (!json_is_object(v)) {
    json_decref(v);
    return SVC_FRAME_INVALID_MSG;
  }
  *out = v;
  *has_nul = found & JPARSE_FOUND_NUL;
  *depth = JPARSE_FOUND_DEPTH(found);
  return SVC_FRAME_READY;
}

/* Raw mode's body check: the same verdicts as frame_parse, by jparse_scan (no tree). */
static svc_frame_status frame_scan(const uint8_t *p, size_t n, const char *sub, svc_frame_raw *r, char *detail,
                                   size_t detail_cap) {
  detail[0] = 0;
  r->body = (const char *)p;
  r->len = n;
  r->n_members = r->n_pm = 0;
  r->has_nul = false;
  r->found = 0;
  if (n == 0) return SVC_FRAME_INVALID_JSON;
  jparse_error jerr;
  unsigned found = 0;
  int rc = jparse_scan_sub((const char *)p, n, SVC_FRAME_MAX_DEPTH, JPARSE_REJECT_DUPLICATES | JPARSE_ALLOW_NUL, r->m,
                           SVC_FRAME_RAW_MEMBERS, &r->n_members, sub ? sub : "params", r->pm, SVC_FRAME_RAW_MEMBERS, &r->n_pm, &jerr,
                           &found);
  if (rc == -ENOMEM) return SVC_FRAME_NOMEM;
  if (rc != 0) {
    snprintf(detail, detail_cap, "%s (at byte %zu)", jerr.text, jerr.position);
    return SVC_FRAME_INVALID_JSON;
  }
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
  if (p[i] != '{') return SVC_FRAME_INVALID_MSG;
  r->has_nul = found & JPARSE_FOUND_NUL;
  r->found = found;
  return SVC_FRAME_READY;
}

void svc_frame_dec_set_raw(svc_frame_dec *d, bool raw) { d->raw = raw; }
void svc_frame_dec_set_raw_sub(svc_frame_dec *d, const char *key) { d->raw_sub = key; }

const svc_frame_raw *svc_frame_dec_take_raw(svc_frame_dec *d) {
  if (!d->raw_ready) return NULL;
  d->raw_ready = false;
  return &d->r;
}

void svc_frame_dec_init(svc_frame_dec *d, size_t max) {
  memset(d, 0, sizeof *d);
  d->max = max ? max : SVC_FRAME_DEFAULT_MAX;
  buf_init(&d->body, d->max);
}

void svc_frame_dec_free(svc_frame_dec *d) {
  buf_free(&d->body);
  json_decref(d->ready);
  d->ready = NULL;
}

void svc_frame_dec_set_max(svc_frame_dec *d, size_t max) {
  d->max = max ? max : SVC_FRAME_DEFAULT_MAX;
  /* the body buffer's own ceiling stays the larger of the two until the frame in progress is
   * done (its declared length was admitted under the old ceiling) */
  if (buf_max(&d->body) < d->max) buf_set_max(&d->body, d->max);
  else if (d->hdr_have < SVC_FRAME_HDR && buf_len(&d->body) == 0) buf_set_max(&d->body, d->max);
}

void svc_frame_dec_fail(svc_frame_dec *d, svc_frame_status st) {
  if (!d->err) d->err = st < 0 ? st : SVC_FRAME_INVALID_MSG;
  d->raw_ready = d->raw_hold = false;
  d->hdr_have = 0;
  d->want = 0;
  buf_free(&d->body);
}

const char *svc_frame_dec_detail(const svc_frame_dec *d) { return d->detail; }

svc_frame_status svc_frame_dec_feed(svc_frame_dec *d, const uint8_t *p, size_t n, size_t *consumed) {
  size_t used = 0;
  *consumed = 0;
  if (d->err) return d->err;
  if (d->ready || d->raw_ready) return SVC_FRAME_READY; /* caller must take the previous frame first */
  if (d->raw_hold) { /* the last raw frame's bytes were kept until now */
    d->raw_hold = false;
    if (buf_cap(&d->body) > 64u * 1024u) buf_free(&d->body);
    else buf_reset(&d->body);
  }
  while (used < n || (d->hdr_have == SVC_FRAME_HDR && buf_len(&d->body) == d->want)) {
    if (d->hdr_have < SVC_FRAME_HDR) {
      size_t k = SVC_FRAME_HDR - d->hdr_have;
      if (k > n - used) k = n - used;
      memcpy(d->hdr + d->hdr_have, p + used, k);
      d->hdr_have += k;
      used += k;
      if (d->hdr_have < SVC_FRAME_HDR) break;
      d->want = (uint32_t)d->hdr[0] << 24 | (uint32_t)d->hdr[1] << 16 | (uint32_t)d->hdr[2] << 8 |
                (uint32_t)d->hdr[3];
      /* The ceiling is checked on the declared length, before any body byte is kept. */
      if ((size_t)d->want > d->max) {
        d->err = SVC_FRAME_TOO_LARGE;
        *consumed = used;
        return d->err;
      }
      buf_reset(&d->body);
      if (buf_max(&d->body) != d->max) buf_set_max(&d->body, d->max);
      continue;
    }
    size_t have = buf_len(&d->body);
    if (d->raw && have == 0 && n - used >= d->want) {
      /* raw mode, the whole body in this input: checked where it lies, no copy */
      svc_frame_status st = frame_scan(p + used, d->want, d->raw_sub, &d->r, d->detail, sizeof d->detail);
      used += d->want;
      d->hdr_have = 0;
      d->want = 0;
      *consumed = used;
      if (st != SVC_FRAME_READY) {
        d->err = st;
        return st;
      }
      d->raw_ready = true;
      return SVC_FRAME_READY;
    }
    if (have < d->want) {
      size_t k = d->want - have;
      if (k > n - used) k = n - used;
      if (buf_append(&d->body, p + used, k) != 0) {
        d->err = SVC_FRAME_NOMEM;
        *consumed = used;
        return d->err;
      }
      used += k;
      if (buf_len(&d->body) < d->want) break;
    }
    /* Complete frame. */
    if (d->raw) {
      svc_frame_status st = frame_scan(buf_ptr(&d->body), buf_len(&d->body), d->raw_sub, &d->r, d->detail, sizeof d->detail);
      d->hdr_have = 0;
      d->want = 0;
      d->raw_hold = true; /* the bytes stay until the next feed */
      *consumed = used;
      if (st != SVC_FRAME_READY) {
        d->err = st;
        return st;
      }
      d->raw_ready = true;
      return SVC_FRAME_READY;
    }
    json_t *v;
    svc_frame_status st =
        frame_parse(buf_ptr(&d->body), buf_len(&d->body), &v, d->detail, sizeof d->detail, &d->ready_nul, &d->ready_depth);
    d->hdr_have = 0;
    d->want = 0;
    /* a large body's memory goes back now, not when the next large frame replaces it */
    if (buf_cap(&d->body) > 64u * 1024u) buf_free(&d->body);
    else buf_reset(&d->body);
    *consumed = used;
    if (st != SVC_FRAME_READY) {
      d->err = st;
      return st;
    }
    d->ready = v;
    return SVC_FRAME_READY;
  }
  *consumed = used;
  return SVC_FRAME_NEED_MORE;
}

json_t *svc_frame_dec_take(svc_frame_dec *d) {
  json_t *v = d->ready;
  d->ready = NULL;
  return v;
}

bool svc_frame_dec_last_has_nul(const svc_frame_dec *d) { return d->ready_nul; }
int svc_frame_dec_last_depth(const svc_frame_dec *d) { return d->ready_depth; }

int svc_frame_encode(buf *out, const json_t *msg, size_t max) {
  if (!msg) return -EINVAL;
  /* one serialisation (json_dumpb ran twice: size, then bytes), numbers in their shortest
   * exact form (util/jwrite.h) */
  jwrite w;
  jwrite_init(&w, max && max < UINT32_MAX ? max : UINT32_MAX, JWRITE_ASCII);
  jwrite_json(&w, msg);
  int rc = jwrite_error(&w);
  size_t n = jwrite_len(&w);
  uint8_t *dst = NULL;
  if (rc == 0) rc = buf_reserve(out, SVC_FRAME_HDR + n, &dst);
  if (rc == 0) {
    dst[0] = (uint8_t)(n >> 24);
    dst[1] = (uint8_t)(n >> 16);
    dst[2] = (uint8_t)(n >> 8);
    dst[3] = (uint8_t)n;
    memcpy(dst + SVC_FRAME_HDR, jwrite_ptr(&w), n);
    buf_commit(out, SVC_FRAME_HDR + n);
  }
  jwrite_free(&w);
  return rc;
}

/* A request with its params as text and a method that needs no escape (printable ASCII, no '"'
 * or '\\'): the same bytes as the writer's, straight into out (no scratch copy). */
static int encode_request_plain(buf *out, uint64_t id, const char *method, size_t ml, const char *ptext, size_t plen,
                                size_t max) {
  char digits[20];
  size_t nd = 0;
  do digits[sizeof digits - ++nd] = (char)('0' + id % 10);
  while ((id /= 10) != 0);
  static const char k_head[] = "{\"jsonrpc\":\"2.0\",\"id\":", k_method[] = ",\"method\":\"", k_params[] = "\",\"params\":";
  size_t n = sizeof k_head - 1 + nd + sizeof k_method - 1 + ml + (ptext ? sizeof k_params - 1 + plen : 1) + 1;
  if (n > (max && max < UINT32_MAX ? max : UINT32_MAX)) return -E2BIG;
  uint8_t *dst = NULL;
  int rc = buf_reserve(out, SVC_FRAME_HDR + n, &dst);
  if (rc != 0) return rc;
  dst[0] = (uint8_t)(n >> 24);
  dst[1] = (uint8_t)(n >> 16);
  dst[2] = (uint8_t)(n >> 8);
  dst[3] = (uint8_t)n;
  uint8_t *o = dst + SVC_FRAME_HDR;
  memcpy(o, k_head, sizeof k_head - 1);
  o += sizeof k_head - 1;
  memcpy(o, digits + sizeof digits - nd, nd);
  o += nd;
  memcpy(o, k_method, sizeof k_method - 1);
  o += sizeof k_method - 1;
  memcpy(o, method, ml);
  o += ml;
  if (ptext) {
    memcpy(o, k_params, sizeof k_params - 1);
    o += sizeof k_params - 1;
    memcpy(o, ptext, plen);
    o += plen;
  } else {
    *o++ = '"';
  }
  *o = '}';
  buf_commit(out, SVC_FRAME_HDR + n);
  return 0;
}

static int encode_request(buf *out, jwrite *w, uint64_t id, const char *method, const json_t *params,
                          const char *ptext, size_t plen, size_t max) {
  if (!method) return -EINVAL;
  if (!params && id <= INT64_MAX) { /* jwrite_int prints a long long */
    size_t ml = jwrite_plain_len(method);
    if (!method[ml]) return encode_request_plain(out, id, method, ml, ptext, plen, max);
  }
  jwrite_reset(w);
  jwrite_lit(w, "{\"jsonrpc\":\"2.0\",\"id\":");
  jwrite_int(w, (long long)id);
  jwrite_lit(w, ",\"method\":");
  jwrite_cstr(w, method);
  if (params) {
    jwrite_lit(w, ",\"params\":");
    jwrite_json(w, params);
  } else if (ptext) {
    jwrite_lit(w, ",\"params\":");
    jwrite_raw(w, ptext, plen);
  }
  jwrite_byte(w, '}');
  int rc = jwrite_error(w);
  size_t n = jwrite_len(w);
  if (rc == 0 && n > (max && max < UINT32_MAX ? max : UINT32_MAX)) rc = -E2BIG;
  uint8_t *dst = NULL;
  if (rc == 0) rc = buf_reserve(out, SVC_FRAME_HDR + n, &dst);
  if (rc == 0) {
    dst[0] = (uint8_t)(n >> 24);
    dst[1] = (uint8_t)(n >> 16);
    dst[2] = (uint8_t)(n >> 8);
    dst[3] = (uint8_t)n;
    memcpy(dst + SVC_FRAME_HDR, jwrite_ptr(w), n);
    buf_commit(out, SVC_FRAME_HDR + n);
  }
  if (w->cap > 64u * 1024u) jwrite_free(w); /* a large request does not pin its memory */
  jwrite_reset(w);
  return rc;
}

int svc_frame_encode_request(buf *out, jwrite *scratch, uint64_t id, const char *method, const json_t *params,
                             size_t max) {
  return encode_request(out, scratch, id, method, params, NULL, 0, max);
}

int svc_frame_encode_request_text(buf *out, jwrite *scratch, uint64_t id, const char *method, const char *params,
                                  size_t params_len, size_t max) {
  return encode_request(out, scratch, id, method, NULL, params, params_len, max);
}

json_t *svc_frame_error_reply(svc_frame_status st) {
  return json_pack("{s:s, s:n, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", "error", "code",
                   MCP_RPC_MCPP_FRAME_ERROR, "message", svc_frame_status_str(st));
}

json_t *svc_frame_error_reply_detail(svc_frame_status st, const char *detail) {
  if (!detail || !*detail) return svc_frame_error_reply(st);
  return json_pack("{s:s, s:n, s:{s:i, s:s, s:{s:s}}}", "jsonrpc", "2.0", "id", "error", "code", MCP_RPC_MCPP_FRAME_ERROR,
                   "message", svc_frame_status_str(st), "data", "detail", detail);
}

/* --- NDJSON --- */

void svc_ndjson_dec_init(svc_ndjson_dec *d, size_t max) {
  memset(d, 0, sizeof *d);
  d->max = max ? max : SVC_FRAME_DEFAULT_MAX;
  buf_init(&d->line, d->max);
}

void svc_ndjson_dec_free(svc_ndjson_dec *d) {
  buf_free(&d->line);
  json_decref(d->ready);
  d->ready = NULL;
}

static svc_frame_status ndjson_complete(svc_ndjson_dec *d) {
  size_t n = buf_len(&d->line);
  const uint8_t *p = buf_ptr(&d->line);
  while (n && (p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
  json_t *v;
  bool has_nul;
  int depth;
  svc_frame_status st = frame_parse(p, n, &v, d->detail, sizeof d->detail, &has_nul, &depth);
  d->done = 1;
  if (st != SVC_FRAME_READY) {
    d->err = st;
    return st;
  }
  d->ready = v;
  return SVC_FRAME_READY;
}

svc_frame_status svc_ndjson_dec_feed(svc_ndjson_dec *d, const uint8_t *p, size_t n) {
  if (d->err) return d->err;
  if (d->done) return d->ready ? SVC_FRAME_READY : SVC_FRAME_NEED_MORE;
  const uint8_t *nl = n ? memchr(p, '\n', n) : NULL;
  size_t k = nl ? (size_t)(nl - p) + 1 : n;
  int rc = buf_append(&d->line, p, k);
  if (rc != 0) {
    /* -E2BIG: the line passed its ceiling without a newline */
    d->err = rc == -ENOMEM ? SVC_FRAME_NOMEM : SVC_FRAME_TOO_LARGE;
    return d->err;
  }
  if (!nl) {
    if (buf_len(&d->line) >= d->max) {
      d->err = SVC_FRAME_TOO_LARGE;
      return d->err;
    }
    return SVC_FRAME_NEED_MORE;
  }
  return ndjson_complete(d);
}

svc_frame_status svc_ndjson_dec_finish(svc_ndjson_dec *d) {
  if (d->err) return d->err;
  if (d->done) return d->ready ? SVC_FRAME_READY : SVC_FRAME_NEED_MORE;
  if (buf_len(&d->line) == 0) {
    d->err = SVC_FRAME_EMPTY;
    return d->err;
  }
  return ndjson_complete(d);
}

json_t *svc_ndjson_dec_take(svc_ndjson_dec *d) {
  json_t *v = d->ready;
  d->ready = NULL;
  return v;
}

int svc_ndjson_encode(buf *out, const json_t *msg) {
  if (!msg) return -EINVAL;
  /* No JSON_COMPACT: jansson then separates with ", " and ": ", as Python's json.dumps does. */
  const size_t flags = JSON_ENSURE_ASCII | JSON_ENCODE_ANY;
  size_t n = json_dumpb(msg, NULL, 0, flags);
  if (n == 0) return -EINVAL;
  uint8_t *dst;
  int rc = buf_reserve(out, n + 1, &dst);
  if (rc) return rc;
  if (json_dumpb(msg, (char *)dst, n, flags) != n) return -EINVAL;
  dst[n] = '\n';
  buf_commit(out, n + 1);
  return 0;
}
