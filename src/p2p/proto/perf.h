/* perf.h — libp2p perf (`/perf/1.0.0`, libp2p/specs perf/perf.md), sans-I/O, both ends.
 *
 * Client: sends the number of bytes it wants back as a big-endian u64, then its upload
 * bytes, then closes its write side, then reads until the server's FIN.
 * Server: reads the u64, discards everything until the client's FIN, then sends the
 * requested number of bytes (never while still reading) and closes.
 * The payload bytes are zeros. No clock inside: the caller stamps times into
 * perf_result. Plain structs the caller embeds; nothing allocated. Not thread-safe.
 * The spec says perf SHOULD NOT be enabled by default; the host decides who may use it. */
#ifndef PEERMCP_P2P_PROTO_PERF_H
#define PEERMCP_P2P_PROTO_PERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PERF_PROTO_ID "/perf/1.0.0"
#define PERF_HEADER_LEN 8

typedef enum {
  PERF_SRV_READ_HEADER = 0, /* waiting for the 8-byte request */
  PERF_SRV_DRAIN,           /* discarding the upload until EOF */
  PERF_SRV_SEND,            /* EOF seen: produce the requested bytes */
  PERF_SRV_DONE,            /* all bytes produced: close the write side */
  PERF_SRV_FAILED
} perf_server_state;

typedef struct perf_server {
  perf_server_state state;
  uint8_t hdr[PERF_HEADER_LEN];
  size_t hdr_len;
  uint64_t to_send;   /* requested by the client */
  uint64_t sent;      /* produced by perf_server_fill */
  uint64_t received;  /* upload bytes discarded */
} perf_server;

void perf_server_init(perf_server *p);
/* Consumes all bytes (header, then upload). -EPROTO if called after EOF. */
int perf_server_feed(perf_server *p, const uint8_t *data, size_t len)
    __attribute__((warn_unused_result));
/* The client closed its write side. -EPROTO if the 8-byte header was incomplete. */
int perf_server_eof(perf_server *p) __attribute__((warn_unused_result));
/* In PERF_SRV_SEND: writes up to cap bytes to send into dst, returns how many (0 once
 * done — then state is PERF_SRV_DONE and the owner closes the stream). Use it as "peek":
 * call perf_server_sent(p, n) with what the transport actually took. */
size_t perf_server_fill(const perf_server *p, uint8_t *dst, size_t cap);
void perf_server_sent(perf_server *p, size_t n);

typedef enum {
  PERF_CLI_SEND = 0,  /* producing header + upload */
  PERF_CLI_RECEIVE,   /* upload done: owner closes write side, reads the download */
  PERF_CLI_DONE,      /* EOF after exactly the requested bytes */
  PERF_CLI_FAILED
} perf_client_state;

typedef struct perf_client {
  perf_client_state state;
  uint64_t upload_total, download_total;
  uint64_t produced; /* header + upload bytes handed out (header counts 8) */
  uint64_t received; /* download bytes seen */
} perf_client;

void perf_client_init(perf_client *c, uint64_t upload_bytes, uint64_t download_bytes);
/* Writes up to cap bytes of header-then-upload into dst, returns how many; the owner calls
 * perf_client_sent() with what the transport accepted. When everything was sent the
 * state becomes PERF_CLI_RECEIVE: close the write side. */
size_t perf_client_fill(const perf_client *c, uint8_t *dst, size_t cap);
void perf_client_sent(perf_client *c, size_t n);
/* Timer-based upload: stop early (after at least the header went out) and move to
 * PERF_CLI_RECEIVE. -EPROTO if the 8-byte header has not been fully sent. */
int perf_client_end_upload(perf_client *c) __attribute__((warn_unused_result));
/* Download bytes. -EPROTO if more than requested arrive. */
int perf_client_feed(perf_client *c, const uint8_t *data, size_t len)
    __attribute__((warn_unused_result));
/* Server closed: 0 (PERF_CLI_DONE) if exactly the requested bytes came, else -EPROTO. */
int perf_client_eof(perf_client *c) __attribute__((warn_unused_result));

/* Throughput helper: bytes over [t0_us, t1_us] in bits per second (0 if t1 <= t0). */
double perf_bits_per_second(uint64_t bytes, uint64_t t0_us, uint64_t t1_us);

#endif
