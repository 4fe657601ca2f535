/* jparse.h — a JSON parser that builds jansson values, for text that arrives on the hot path
 * (every MCP message of every transport).
 *
 * Why not json_loadb(): jansson lexes through a callback per character and a growing token
 * buffer; parsing one ~120-byte tools/call request cost ~24 k instructions (callgrind), more than
 * serving it. This parser reads the bytes in place and creates the same tree with jansson's
 * own constructors (json_object_setn_new_nocheck, json_stringn_nocheck, …) after validating
 * what those skip. bench/mcp/jsonparse.c measures it against jansson and the other JSON
 * libraries Debian packages (bench/RESULTS.md).
 *
 * It accepts exactly what json_loadb(JSON_DECODE_ANY) accepts and builds the same tree
 * (tests/util/test_jparse.c and fuzz/fuzz_jparse.c compare the two): RFC 8259 JSON, any value at
 * the top, strings valid UTF-8 (no overlong forms, surrogates or code points past U+10FFFF;
 * escaped surrogates only as pairs; no \u0000), integers without '.'/exponent as json_int_t (out
 * of range is an error, as jansson's "too big integer"), other numbers as reals (overflow is an
 * error), a later duplicate key replacing an earlier one, nothing but whitespace after the value.
 * Differences, on purpose: nesting deeper than max_depth is its own error (-ELOOP, checked as
 * the brackets open, so a deep document costs nothing); a failed allocation is -ENOMEM — never
 * mistaken for a syntax error, never a corrupted parse (jansson's lexer is not safe there:
 * util/alloc.h); and a NUL byte right after a number or literal, at the top level or inside
 * an array or object ("1\0", "null\0", "[3\0]"), which a quirk of jansson's lexer lets through
 * (it refuses "[1]\0"), is refused like any other byte that JSON does not allow there.
 *
 * Error messages are short and say where (err->position: byte offset of the problem).
 * Thread-safe; allocates only the tree (through jansson's allocator, util/alloc.h) and, for
 * a string with escapes longer than 256 bytes, a scratch buffer. */
#ifndef PEERMCP_UTIL_JPARSE_H
#define PEERMCP_UTIL_JPARSE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct jparse_error {
  size_t position; /* byte offset where the text stopped being JSON */
  char text[96];   /* what was wrong ("invalid token", "unexpected end of input", …) */
} jparse_error;

/* Parses p[0..n) into *out (a new reference). Returns 0; -EINVAL (not JSON: err filled);
 * -ELOOP (arrays/objects nested deeper than max_depth); -ENOMEM. *out is NULL on failure.
 * err may be NULL. */
int jparse(const char *p, size_t n, int max_depth, json_t **out, jparse_error *err)
    __attribute__((warn_unused_result));

/* The same with options, each matching the jansson decoding flag of the same name (the
 * /mcp+p2p/1.0.0 frames use both, service/frame.c):
 *  JPARSE_REJECT_DUPLICATES  a key repeated in one object is an error ("duplicate object key")
 *                            instead of replacing the earlier value;
 *  JPARSE_ALLOW_NUL          \u0000 is allowed in string values (the string's length says where
 *                            it ends); an object key holding one is still an error ("NUL byte
 *                            in object key not supported"), as in jansson.
 * found (may be NULL) gets what the text held, on success: JPARSE_FOUND_NUL when a string
 * value holds a NUL (so a reader that must refuse NULs in some fields looks only then). */
#define JPARSE_REJECT_DUPLICATES 0x1u
#define JPARSE_ALLOW_NUL 0x2u
#define JPARSE_FOUND_NUL 0x1u
/* ... and, in bits 8 and up, how deep arrays and objects nested (0 for a scalar, 1 for {} or
 * [1], …): a reader with a lower ceiling than the parse's need not walk the tree again */
#define JPARSE_FOUND_DEPTH(found) ((int)((found) >> 8))
int jparse_flags(const char *p, size_t n, int max_depth, unsigned flags, json_t **out, jparse_error *err,
                 unsigned *found) __attribute__((warn_unused_result));

/* Validation without a tree: jparse_scan accepts and refuses exactly what jparse_flags does
 * with the same max_depth and flags (duplicate keys included: compared as raw bytes within an
 * object; an object with an escaped key or more than 32 keys is decided by a tree parse), and
 * allocates nothing in the common case. When the text is an object, its members (up to cap of
 * them) are described in members[] as spans of p: the raw key (between the quotes, escapes not
 * decoded: key_escaped says so) and the value's JSON text. *n_members gets the object's number
 * of members (possibly more than cap); 0 when the text is not an object. Returns as
 * jparse_flags; on failure *n_members is 0. members, n_members, err and found may be NULL. */
typedef struct jparse_member {
  const char *key;
  size_t key_len;
  const char *val;
  size_t val_len;
  bool key_escaped;
} jparse_member;
int jparse_scan(const char *p, size_t n, int max_depth, unsigned flags, jparse_member *members, size_t cap,
                size_t *n_members, jparse_error *err, unsigned *found) __attribute__((warn_unused_result));

/* jparse_scan that also lists, the same way, the members of the object that is the value of
 * the top-level member sub_key (an unescaped key; the last such member's when it repeats), up to
 * sub_cap of them in sub[]; *n_sub gets how many it has (0 when there is no such member or its
 * value is not an object). Members of an object that is not that value are not listed; a
 * top-level key written with an escape is not compared (a reader that sees one in members[]
 * must not trust sub[]). sub_key NULL (or members NULL) = jparse_scan. */
int jparse_scan_sub(const char *p, size_t n, int max_depth, unsigned flags, jparse_member *members, size_t cap,
                    size_t *n_members, const char *sub_key, jparse_member *sub, size_t sub_cap, size_t *n_sub,
                    jparse_error *err, unsigned *found) __attribute__((warn_unused_result));

/* The value of member `key` in the object text obj[0..n), text that jparse or jparse_scan has
 * accepted (NOT checked again: never call it on unvalidated text). Keys are compared decoded.
 * 0 with *val / *val_len set (a span of obj), -ENOENT when there is no such member, -EINVAL
 * when obj is not an object. The first match is returned. */
int jparse_find(const char *obj, size_t n, const char *key, const char **val, size_t *val_len)
    __attribute__((warn_unused_result));

/* The members of the object text obj[0..n), text that jparse or jparse_scan has accepted (NOT
 * checked again), as spans of obj in their order (a repeated key is listed each time; a reader
 * with "last one wins" semantics takes the last): raw keys (key_escaped when a key holds an
 * escape: compare it decoded, or let a tree parse decide) and value texts. Up to cap of them go
 * to members[]; *n_members gets how many there are. 0, or -EINVAL when obj is not an object. */
int jparse_members(const char *obj, size_t n, jparse_member *members, size_t cap, size_t *n_members)
    __attribute__((warn_unused_result));

#endif
