/* mss.c — multistream-select 1.0 negotiation engine (see mss.h, docs/multistream-select.md).
 *
 * Input is parsed one length-prefixed message at a time. A partial message is copied into
 * a fixed MSS_MAX_MSG-byte scratch area, so memory per channel is bounded and no byte after
 * the final message is ever swallowed. */
#include "p2p/proto/mss.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/check.h"

#define MSS_HDR_LEN (sizeof(MSS_PROTO_ID) - 1)

typedef struct mss_proto {
  char *id;
  size_t len;
} mss_proto;

struct mss {
  mss_role role;
  mss_state state;
  int err;
  bool started;
  bool header_seen;  /* peer's /multistream/1.0.0 received */
  mss_proto protos[MSS_MAX_PROTOS];
  size_t n_protos;
  size_t next;       /* dialer: index of the proposal in flight */
  size_t attempts;   /* listener: proposals answered */
  mss_match_fn match;
  void *match_ud;
  const char *selected;
  char *selected_own; /* listener via match fn: owned copy */
  /* Partial message: varint + body as received so far (len of varint <= 2 for 1 KiB). */
  uint8_t part[MSS_MAX_MSG + 4];
  size_t part_len;
};

/* Minimal unsigned varint (multiformats). Only lengths up to MSS_MAX_MSG matter here, so a
 * value needs at most 2 bytes; anything longer is oversize or non-minimal junk.
 * Returns 0, -EAGAIN (need more), -EMSGSIZE, -EPROTO. */
static int mss_len_decode(const uint8_t *p, size_t n, size_t *val, size_t *used) {
  uint64_t v = 0;
  for (size_t i = 0; i < n && i < 9; i++) {
    v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
    if (!(p[i] & 0x80)) {
      if (i > 0 && p[i] == 0) return -EPROTO; /* non-minimal */
      if (v > MSS_MAX_MSG) return -EMSGSIZE;
      *val = (size_t)v;
      *used = i + 1;
      return 0;
    }
    /* Two continuation bytes already mean a value >= 2^14 > MSS_MAX_MSG. */
    if (i >= 1) return -EMSGSIZE;
  }
  return n >= 9 ? -EPROTO : -EAGAIN;
}

static size_t mss_len_encode(size_t v, uint8_t out[10]) {
  size_t i = 0;
  while (v >= 0x80) {
    out[i++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[i++] = (uint8_t)v;
  return i;
}

int mss_write_msg(buf *out, const char *msg, size_t len) {
  if (len >= 128u * 1024u) return -EINVAL; /* ls of MSS_MAX_PROTOS ids fits */
  uint8_t hdr[10];
  size_t h = mss_len_encode(len + 1, hdr);
  uint8_t *dst;
  int rc = buf_reserve(out, h + len + 1, &dst);
  if (rc) return rc;
  memcpy(dst, hdr, h);
  if (len) memcpy(dst + h, msg, len);
  dst[h + len] = '\n';
  buf_commit(out, h + len + 1);
  return 0;
}

static bool mss_id_valid(const char *id) {
  if (!id) return false;
  size_t n = strlen(id);
  return n > 0 && n + 1 <= MSS_MAX_MSG && !memchr(id, '\n', n);
}

static int mss_new(mss **out, mss_role role, const char *const *protos, size_t n) {
  *out = NULL;
  if (n > MSS_MAX_PROTOS || (n && !protos)) return -EINVAL;
  if (role == MSS_DIALER && n == 0) return -EINVAL;
  for (size_t i = 0; i < n; i++)
    if (!mss_id_valid(protos[i])) return -EINVAL;
  mss *m = calloc(1, sizeof *m);
  if (!m) return -ENOMEM;
  m->role = role;
  for (size_t i = 0; i < n; i++) {
    m->protos[i].len = strlen(protos[i]);
    m->protos[i].id = strdup(protos[i]);
    if (!m->protos[i].id) {
      m->n_protos = i;
      mss_free(m);
      return -ENOMEM;
    }
  }
  m->n_protos = n;
  *out = m;
  return 0;
}

int mss_dialer_new(mss **out, const char *const *protos, size_t n) {
  return mss_new(out, MSS_DIALER, protos, n);
}

int mss_listener_new(mss **out, const char *const *protos, size_t n) {
  return mss_new(out, MSS_LISTENER, protos, n);
}

void mss_listener_set_match(mss *m, mss_match_fn fn, void *ud) {
  m->match = fn;
  m->match_ud = ud;
}

void mss_free(mss *m) {
  if (!m) return;
  for (size_t i = 0; i < m->n_protos; i++) free(m->protos[i].id);
  free(m->selected_own);
  free(m);
}

static int mss_fail(mss *m, int err) {
  m->state = MSS_FAILED;
  m->err = err;
  return err;
}

int mss_start(mss *m, buf *out) {
  if (m->state == MSS_FAILED) return m->err;
  if (m->started) return 0;
  size_t mark = buf_len(out);
  int rc = mss_write_msg(out, MSS_PROTO_ID, MSS_HDR_LEN);
  if (!rc && m->role == MSS_DIALER) rc = mss_write_msg(out, m->protos[0].id, m->protos[0].len);
  if (rc) {
    buf_truncate(out, mark); /* all or nothing */
    return rc;
  }
  m->started = true;
  return 0;
}

static bool mss_eq(const uint8_t *a, size_t alen, const char *b, size_t blen) {
  return alen == blen && memcmp(a, b, alen) == 0;
}

/* The listener's `ls` answer: one message whose body is each id as its own framed
 * message, followed by a final '\n'. */
static int mss_write_ls(mss *m, buf *out) {
  buf body;
  buf_init(&body, MSS_MAX_PROTOS * (MSS_MAX_MSG + 4));
  int rc = 0;
  for (size_t i = 0; i < m->n_protos && !rc; i++)
    rc = mss_write_msg(&body, m->protos[i].id, m->protos[i].len);
  if (!rc) rc = mss_write_msg(out, (const char *)buf_ptr(&body), buf_len(&body));
  buf_free(&body);
  return rc;
}

/* Handles one complete message body (without the '\n'). Returns 0 or a negative error. */
static int mss_on_msg(mss *m, const uint8_t *msg, size_t len, buf *out) {
  if (!m->header_seen) {
    if (!mss_eq(msg, len, MSS_PROTO_ID, MSS_HDR_LEN)) return -EPROTO;
    m->header_seen = true;
    return 0;
  }
  if (m->role == MSS_DIALER) {
    CHECK(m->next < m->n_protos); /* -ENOPROTOOPT ended the channel when the last got na */
    const mss_proto *p = &m->protos[m->next];
    if (mss_eq(msg, len, p->id, p->len)) {
      m->selected = p->id;
      m->state = MSS_DONE;
      return 0;
    }
    if (!mss_eq(msg, len, "na", 2)) return -EPROTO;
    if (++m->next >= m->n_protos) return -ENOPROTOOPT;
    p = &m->protos[m->next];
    return mss_write_msg(out, p->id, p->len);
  }
  /* Listener. */
  if (++m->attempts > MSS_MAX_ATTEMPTS) return -ENOPROTOOPT;
  if (mss_eq(msg, len, "ls", 2)) return mss_write_ls(m, out);
  for (size_t i = 0; i < m->n_protos; i++) {
    if (mss_eq(msg, len, m->protos[i].id, m->protos[i].len)) {
      int rc = mss_write_msg(out, m->protos[i].id, m->protos[i].len);
      if (rc) return rc;
      m->selected = m->protos[i].id;
      m->state = MSS_DONE;
      return 0;
    }
  }
  if (m->match && len > 0 && !memchr(msg, '\0', len)) {
    char *copy = malloc(len + 1);
    if (!copy) return -ENOMEM;
    memcpy(copy, msg, len);
    copy[len] = 0;
    if (m->match(m->match_ud, copy, len)) {
      int rc = mss_write_msg(out, copy, len);
      if (rc) {
        free(copy);
        return rc;
      }
      m->selected_own = copy;
      m->selected = copy;
      m->state = MSS_DONE;
      return 0;
    }
    free(copy);
  }
  return mss_write_msg(out, "na", 2);
}

/* Parses one message from p[0..n). Returns bytes used (>0), 0 if incomplete, or error.
 * body and blen receive the message without its '\n'. */
static ssize_t mss_parse_one(const uint8_t *p, size_t n, const uint8_t **body, size_t *blen) {
  size_t mlen, used;
  int rc = mss_len_decode(p, n, &mlen, &used);
  if (rc == -EAGAIN) return 0;
  if (rc) return rc;
  if (mlen == 0) return -EPROTO;
  if (n - used < mlen) return 0;
  if (p[used + mlen - 1] != '\n') return -EPROTO;
  *body = p + used;
  *blen = mlen - 1;
  return (ssize_t)(used + mlen);
}

ssize_t mss_feed(mss *m, const uint8_t *data, size_t len, buf *out) {
  if (m->state == MSS_FAILED) return m->err;
  if (m->state == MSS_DONE) return 0;
  if (!data && len) return -EINVAL;
  if (!m->started) {
    /* Our header (and first proposal) must precede any reply. */
    int rc = mss_start(m, out);
    if (rc) return mss_fail(m, rc);
  }
  size_t pos = 0;
  while (pos < len && m->state == MSS_NEGOTIATING) {
    const uint8_t *body;
    size_t blen;
    ssize_t used;
    if (m->part_len == 0) {
      used = mss_parse_one(data + pos, len - pos, &body, &blen);
      if (used < 0) return mss_fail(m, (int)used);
      if (used == 0) {
        /* Incomplete: keep it (bounded: a valid varint is <= 2 bytes, a body <= 1 KiB). */
        size_t take = len - pos;
        if (take > sizeof m->part) return mss_fail(m, -EMSGSIZE);
        memcpy(m->part, data + pos, take);
        m->part_len = take;
        pos = len;
        break;
      }
      pos += (size_t)used;
    } else {
      /* Complete the partial message byte-exactly: copy only what it still needs. */
      size_t mlen, vused;
      int rc = mss_len_decode(m->part, m->part_len, &mlen, &vused);
      size_t need;
      if (rc == -EAGAIN) {
        need = 1; /* one more varint byte */
      } else if (rc) {
        return mss_fail(m, rc);
      } else {
        need = vused + mlen - m->part_len;
      }
      size_t take = len - pos < need ? len - pos : need;
      if (m->part_len + take > sizeof m->part) return mss_fail(m, -EMSGSIZE);
      memcpy(m->part + m->part_len, data + pos, take);
      m->part_len += take;
      pos += take;
      used = mss_parse_one(m->part, m->part_len, &body, &blen);
      if (used < 0) return mss_fail(m, (int)used);
      if (used == 0) continue;
      m->part_len = 0;
    }
    int rc = mss_on_msg(m, body, blen, out);
    if (rc) return mss_fail(m, rc);
  }
  /* Bytes past the agreement belong to the owner; a partial message is only ever kept while
   * negotiating. */
  CHECK(pos <= len && (m->state == MSS_NEGOTIATING || m->part_len == 0));
  CHECK(m->state != MSS_DONE || m->selected);
  return (ssize_t)pos;
}

mss_state mss_state_get(const mss *m) { return m->state; }
mss_role mss_role_get(const mss *m) { return m->role; }
const char *mss_selected(const mss *m) { return m->state == MSS_DONE ? m->selected : NULL; }
int mss_error(const mss *m) { return m->err; }

bool mss_can_send_early(const mss *m) {
  return m->role == MSS_DIALER && m->n_protos == 1 && m->started && m->state != MSS_FAILED;
}
