/* fernet.h — Fernet tokens (the cryptography library's format, github.com/fernet/spec:
 * version 0x80 ‖ 64-bit big-endian timestamp ‖ 128-bit IV ‖ AES-128-CBC ciphertext (PKCS#7) ‖
 * HMAC-SHA256 over everything before it, the whole base64url-encoded with padding) with
 * OpenSSL's EVP and HMAC, and the Python services' optional payload encryption built on it
 * (p2p_tasks_spec.md §4.5): the key is urlsafe_b64encode(sha256(b"ipfs-accelerate-task-p2p-
 * fernet-v1" + secret)) — signing key its first 16 bytes, encryption key the last 16 — where the
 * secret is …_TASK_P2P_ENCRYPTION_KEY or else the shared token, and an encrypted value travels
 * as {"enc":"fernet-v1","ct":"<token>"}.
 *
 * Why it exists although Noise already encrypts every byte between peers: a payload can sit at
 * rest in a queue or cache on an intermediate peer (docs/service.md, "Payload encryption").
 *
 * Ceilings: tokens longer than AUTH_FERNET_MAX_TOKEN are refused before decoding. The MAC is
 * checked (in constant time) before anything is decrypted. Keys are wiped by
 * auth_fernet_key_wipe. Threads: every function is reentrant. */
#ifndef PEERMCP_AUTH_FERNET_H
#define PEERMCP_AUTH_FERNET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_FERNET_MAX_TOKEN (64u * 1024 * 1024)
#define AUTH_FERNET_WRAPPER "fernet-v1"

typedef struct auth_fernet_key {
  unsigned char sign[16];
  unsigned char enc[16];
} auth_fernet_key;

/* A Fernet key as Fernet(key) takes it: 32 bytes, base64url with padding. 0 or -EINVAL. */
int auth_fernet_key_parse(const char *b64, auth_fernet_key *out) __attribute__((warn_unused_result));
/* The Python services' derivation from a secret (the encryption key, else the shared token). */
void auth_fernet_key_derive(const char *secret, auth_fernet_key *out);
void auth_fernet_key_wipe(auth_fernet_key *k);

/* Encrypts n bytes at Unix time now with iv (NULL → random). Returns a malloc'd NUL-terminated
 * token, or NULL (ENOMEM, OpenSSL failure). */
char *auth_fernet_encrypt(const auth_fernet_key *k, const void *plain, size_t n, uint64_t now, const unsigned char *iv);
/* Decrypts a token (len bytes). ttl_s = 0: no time check (Fernet.decrypt without ttl, what the
 * Python services do); else the token must be at most ttl_s old and at most 60 s in the future.
 * 0 and a malloc'd *plain (NUL-terminated, *n bytes), or -EINVAL (malformed, wrong version,
 * bad MAC, bad padding), -ETIME (outside the ttl), -E2BIG, -ENOMEM. */
int auth_fernet_decrypt(const auth_fernet_key *k, const char *token, size_t len, uint64_t ttl_s, uint64_t now,
                        unsigned char **plain, size_t *n) __attribute__((warn_unused_result));

/* {"enc":"fernet-v1","ct":<token>} of a text (new reference), or NULL. */
json_t *auth_fernet_wrap(const auth_fernet_key *k, const char *text);
/* True for an object with "enc": "fernet-v1" and a string "ct". */
bool auth_fernet_is_wrapped(const json_t *v);
/* The text a wrapper holds (malloc'd), or NULL on any failure (decrypt_text's None). */
char *auth_fernet_unwrap(const auth_fernet_key *k, const json_t *wrapper);
/* A JSON value (cache values) encrypted as the wrapper of its compact text; and back. NULL on
 * failure. */
json_t *auth_fernet_wrap_json(const auth_fernet_key *k, const json_t *value);
json_t *auth_fernet_unwrap_json(const auth_fernet_key *k, const json_t *wrapper);
/* The "prompt_enc" of a task payload (llm.generate, §4.5) decrypted into "prompt": returns a
 * new payload without prompt_enc, or NULL when there is no wrapped prompt_enc; *failed is set
 * when there is one that does not decrypt. */
json_t *auth_fernet_payload_prompt(const auth_fernet_key *k, const json_t *payload, bool *failed);

#endif
