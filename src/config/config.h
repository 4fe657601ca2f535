/* config.h — peermcp's configuration: one JSON file, environment variables and CLI flags,
 * merged with the precedence flags > environment > file > built-in defaults.
 *
 * Owns: the `config` struct and every string/array in it (free with config_free). The file is
 * parsed with jansson; an unknown key, a wrong type or an out-of-range value is an error that
 * names the key path and its line/column in the file ("config.json:12:5: queue.lease_seconds:
 * expected an integer in 1..86400"), and the caller refuses to start.
 *
 * Typical use, in a subcommand:
 *     config_args args;
 *     config_args_init(&args);
 *     if (config_args_parse(&args, &argc, argv, err, sizeof err) != 0) → usage error (exit 2)
 *     … the subcommand parses what is left in argv …
 *     config cfg;
 *     if (config_load(&cfg, &args, err, sizeof err) != 0) → print err, exit 1
 *     …
 *     config_free(&cfg); config_args_free(&args);
 *
 * This module is the only one that reads the process environment: every switch (including the
 * Python services' IPFS_ACCELERATE_PY_* / IPFS_DATASETS_PY_* variables) becomes a field here,
 * and what command tools pass through (env_allow, PATH) is captured at load.
 *
 * Threads: load on the main thread at start-up; afterwards the struct is read-only and may be
 * read from any thread. docs/config.md lists every key, variable and flag. */
#ifndef PEERMCP_CONFIG_CONFIG_H
#define PEERMCP_CONFIG_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/log.h"

/* Ceilings on the file itself. */
#define CONFIG_FILE_MAX_BYTES (1u << 20)
#define CONFIG_MAX_COMMANDS 256

/* p2p.write_early_bytes: from this value on (the default) a connection's output is never sent
 * before the end of a read (a Yamux output never holds that much): the host's policy is off. */
#define CONFIG_WRITE_EARLY_NEVER ((size_t)16 << 20)

typedef enum { CONFIG_OUTPUT_AUTO = 0, CONFIG_OUTPUT_JSON, CONFIG_OUTPUT_TEXT } config_output;

/* Noise transport cipher implementation (same algorithm and wire format either way). */
typedef enum { CONFIG_AEAD_OPENSSL = 0, CONFIG_AEAD_LIBSODIUM } config_aead;

/* A switch whose default depends on other keys. */
typedef enum { CONFIG_AUTO = 0, CONFIG_ON, CONFIG_OFF } config_tristate;

/* Discovery profile (issue 15 §5; docs/p2p-discovery.md says what each sends and reveals). */
typedef enum {
  CONFIG_PROFILE_LOCAL = 0, /* no discovery traffic at all: nothing multicast, nothing dialed unnamed */
  CONFIG_PROFILE_LAN,       /* mDNS */
  CONFIG_PROFILE_PRIVATE,   /* DHT over the configured bootstrap peers, private protocol id */
  CONFIG_PROFILE_PUBLIC,    /* the public IPFS DHT through the public bootstrap peers */
} config_profile;
const char *config_profile_name(config_profile p);

typedef enum { CONFIG_DHT_AUTO = 0, CONFIG_DHT_SERVER, CONFIG_DHT_CLIENT } config_dht_mode;

/* A named peer of p2p.peers: `--peer NAME` means its multiaddr. */
typedef struct config_named_peer {
  char *name;      /* [A-Za-z0-9_.-]{1,64} */
  char *multiaddr; /* with /p2p/<PeerId> */
} config_named_peer;

#define CONFIG_MAX_NAMED_PEERS 256
#define CONFIG_MAX_BOOTSTRAP 64
#define CONFIG_PRIVATE_DHT_PROTOCOL "/peermcp/kad/1.0.0"
#define CONFIG_PUBLIC_DHT_PROTOCOL "/ipfs/kad/1.0.0"
/* p2p.workers "auto" while loading; config_load turns it into the number of online CPUs (at
 * most CONFIG_WORKERS_AUTO_MAX) and sets p2p.workers_auto. */
#define CONFIG_WORKERS_AUTO UINT32_MAX
#define CONFIG_WORKERS_AUTO_MAX 16

/* Ceiling on p2p.cache_replicate_max_peers (targets written to per cache write). */
#define CONFIG_MAX_REPLICATE_PEERS 8

/* One entry of tools.commands[]: a tool that runs a program (see src/tools/command.h). */
typedef struct config_command {
  char *name;            /* tool name, [A-Za-z0-9_.-]{1,128} */
  char *title;           /* optional, NULL if absent */
  char *description;     /* "" if absent */
  char *category;        /* default "commands" */
  json_t *input_schema;  /* owned reference; default {"type":"object"} */
  char **argv;           /* program + fixed args, NULL-terminated; argc entries */
  size_t argc;
  char *cwd;             /* NULL = inherit; relative paths were resolved against the file's dir */
  char **env_allow;      /* variable names passed through from peermcp's environment */
  size_t env_allow_count;
  char **env_pass;       /* "NAME=value" for each env_allow name set in peermcp's environment
                            when the configuration was loaded (and not fixed by env) */
  size_t env_pass_count;
  char **env;            /* fixed "NAME=value" strings from the "env" object */
  size_t env_count;
  uint32_t timeout_ms;   /* 0 = the server's tool_timeout_ms */
  size_t max_output_bytes; /* cap on captured stdout (and on the stderr tail kept); default 1 MiB */
  bool remote;           /* trusted peers may call it */
  char **scopes;         /* scope names a caller needs (auth/scope.h; interned when the tool
                            is registered); NULL → ["tool.call"] */
  size_t scope_count;
  config_output output;  /* how stdout becomes the result; default auto */
  int src_line;          /* line of the entry in the config file (0 if unknown), for messages */
  int schema_line, schema_col; /* where its "input_schema" key is (0 if unknown or absent) */
} config_command;

/* log.access: the per-call access log line (mcp/dispatch.h mcp_access_log; config/ knows
 * nothing of mcp/, node/ maps it). */
typedef enum {
  CONFIG_ACCESS_DEBUG = 0, /* a success at level debug, anything else at info (default) */
  CONFIG_ACCESS_ON = 1,    /* every call at info */
  CONFIG_ACCESS_OFF = 2,   /* none */
} config_access;

typedef struct config {
  char *config_path; /* the file that was loaded, NULL when none */

  /* top level */
  char *state_dir;           /* $XDG_STATE_HOME/peermcp, else ~/.local/state/peermcp */
  log_level log_level;       /* default LOG_INFO */
  size_t max_line_bytes;     /* 16 MiB: longest JSON-RPC line accepted on stdio */
  uint32_t tool_timeout_ms;  /* 30000: default per-call deadline */
  unsigned workers_threads;  /* 8: short pool, threads at start (grows to 64 while all are busy) */
  unsigned workers_long_threads; /* 64: long pool (waits, command tools), most threads */
  unsigned workers_long_queue;   /* 256: long calls waiting for a thread before "busy" */
  unsigned workers_idle_seconds; /* 30: a pool thread added for a burst exits after idling this long */
  unsigned page_size;        /* 50: tools/list page size */
  char *env_path;            /* PATH of peermcp's environment at load, NULL if unset: command
                                tools' programs without a '/' are searched there */

  struct {
    config_command *commands;
    size_t command_count;
    char **disabled; /* tool names not to register */
    size_t disabled_count;
    bool test_tools; /* false; PEERMCP_TEST_TOOLS: register the test-only tools */
    bool conformance_fixtures; /* false; --conformance-fixtures, PEERMCP_CONFORMANCE_FIXTURES: the MCP
                                  conformance suite's fixture tools, prompts and resources */
  } tools;

  struct {
    char *path;                   /* <state_dir>/queue.sqlite3 */
    size_t max_payload_bytes;     /* 1048576 */
    uint32_t lease_seconds;       /* 300 */
    uint32_t max_attempts;        /* 3 */
    uint32_t wait_max_seconds;    /* 300 */
    bool group_commit;            /* true */
    bool wal_prefill;             /* true: written zeros ahead of the WAL's end (store/queue.h) */
    bool sync_pipeline;           /* false; true: commit and WAL fsync overlap (docs/store.md) */
    uint32_t prune_after_seconds; /* 604800 (7 days); 0 = never */
  } queue;

  struct {
    char *dir;                       /* <state_dir>/cache */
    uint64_t max_bytes;              /* 268435456 */
    uint32_t max_entries;            /* 100000 */
    size_t max_value_bytes;          /* 1048576 */
    uint32_t default_ttl_seconds;    /* 0 = no expiry */
    uint32_t sweep_interval_seconds; /* 60 */
  } cache;

  struct {
    bool enabled;               /* true; --no-p2p */
    char **listen;              /* multiaddrs; --p2p-listen (repeatable) replaces the list */
    size_t listen_count;
    char *announce_file;        /* <state_dir>/announce.json; NULL = do not write one */
    char **trusted_peers;       /* PeerIds (base58 text), checked only for shape here */
    size_t trusted_peer_count;
    char *token;                /* shared token, NULL if none (the service then fails closed) */
    uint32_t workers;           /* in-process workers running this node's queued tasks; "auto"
                                   (default) = online CPUs, at most 16; 0 = none;
                                   PEERMCP_P2P_WORKERS */
    bool workers_auto;          /* workers came from "auto" */
    bool enable_legacy_protocol; /* false */
    size_t max_frame_bytes;     /* 1048576 */
    uint32_t max_streams_per_peer;  /* 64 */
    uint32_t rate_limit_per_second; /* 100: frames/s per peer while its caller holds no scope */
    uint32_t authorized_rate_limit_per_second; /* 0 = no limit: … while it holds a scope */
    uint32_t worker_claim_wait_seconds; /* 20: a `worker --peer` claim waits this long for work
                                           on the peer (0 = poll with back-off) */
    uint32_t max_connections;   /* 256 */
    bool enable_perf;           /* false; PEERMCP_P2P_ENABLE_PERF: serve /perf/1.0.0 */
    config_aead noise_aead;     /* openssl; PEERMCP_NOISE_AEAD */
    size_t write_early_bytes;   /* CONFIG_WRITE_EARLY_NEVER (off, the default) or more: a
                                   connection's output leaves at the end of a read; less: also
                                   once it reaches this (p2p_host_config; 2048 measured) */
    bool unfenced_complete;     /* false; PEERMCP_P2P_UNFENCED_COMPLETE: accept `complete`
                                   without worker_id (Python mesh workers; gives up fencing) */
    char *session;              /* NULL; IPFS_ACCELERATE_PY_TASK_P2P_SESSION: status "session" */
    bool deterministic;         /* false; …_TASK_P2P_DETERMINISTIC: §3.2 claim scheduling */
    bool cache_replicate;       /* false; …_TASK_P2P_CACHE_REPLICATE: forward cache writes */
    char **cache_replicate_targets; /* multiaddrs / PeerIds; …_CACHE_REPLICATE_TARGETS|PEERS */
    size_t cache_replicate_target_count;
    uint32_t cache_replicate_max_peers; /* 6 (0..CONFIG_MAX_REPLICATE_PEERS) */

    /* Discovery (issue 15). The switches may be "auto": then the profile decides (see `eff`). */
    config_profile profile;     /* local; PEERMCP_P2P_PROFILE, --p2p-profile */
    config_tristate mdns;       /* auto = on in lan; IPFS_ACCELERATE_PY_TASK_P2P_MDNS (twin
                                   IPFS_DATASETS_PY_…): 0/false/no/off = off, any other value on */
    config_tristate dht;        /* auto = on in private and public; …_TASK_P2P_DHT (same reading) */
    config_tristate rendezvous; /* auto = publish ourselves under the namespace when the DHT is on;
                                   …_TASK_P2P_RENDEZVOUS */
    config_dht_mode dht_mode;   /* auto (server in lan/private, client in public until
                                   reachability is known), "server", "client" */
    char *dht_protocol;         /* NULL = CONFIG_PRIVATE_DHT_PROTOCOL in private, else
                                   CONFIG_PUBLIC_DHT_PROTOCOL */
    char **bootstrap;           /* multiaddrs with /p2p/ (also /dnsaddr/…); …_TASK_P2P_BOOTSTRAP_PEERS
                                   (comma-separated; 0/false/no/off = none) */
    size_t bootstrap_count;
    bool bootstrap_set;         /* the file or the environment gave the list (else the profile's) */
    config_named_peer *peers;   /* p2p.peers {"name": "/ip4/…/p2p/…"} */
    size_t peer_count;
    char *rendezvous_ns;        /* "ipfs-accelerate-task-queue"; …_TASK_P2P_RENDEZVOUS_NS */
    uint32_t dht_provide_interval_seconds; /* 1800; 0 = publish once; …_DHT_PROVIDE_INTERVAL_S
                                              (≤ 0 there = once) */
    bool mdns_allow_loopback;   /* false; …_TASK_P2P_MDNS_ALLOW_LOOPBACK */
    uint32_t mdns_query_interval_ms; /* 60000: longest gap between mDNS queries */
    bool dnsaddr_resolve;       /* true; …_TASK_P2P_DNSADDR_RESOLVE */
    uint32_t peer_timeout_seconds;   /* 300: "alive" window of the peer table; …_PEER_TIMEOUT_S */
    uint32_t peer_addr_ttl_seconds;  /* 86400: addresses not heard of for this long are forgotten */
    uint32_t discovery_timeout_ms;   /* 5000: how long `--peer <PeerId>` resolution may search;
                                        …_TASK_P2P_DISCOVERY_TIMEOUT_S (seconds, a float) */
    /* What the profile and the switches above come to (filled by config_load). */
    struct {
      bool mdns, dht, dht_server, rendezvous_publish;
      const char *dht_protocol; /* points at dht_protocol or a constant */
      bool autonat, relay, holepunch; /* NAT traversal (below) */
    } eff;
    bool trust_tiers;           /* false; …_TASK_P2P_TRUST_TIERS: trusted / elevated / baseline
                                   from verified credentials only (auth/auth.h auth_tier) */
    uint32_t baseline_max_priority; /* 5 (1..10); …_TASK_P2P_BASELINE_MAX_PRIORITY */
    bool encrypt;               /* false; …_TASK_P2P_ENCRYPT: Fernet payload encryption */
    char *encryption_key;       /* NULL; …_TASK_P2P_ENCRYPTION_KEY (else the shared token) */
    char *client_token;         /* --token-file: what this node presents as a client (a JWT or
                                   the shared token); NULL → token */
    /* Abuse limits (issue 9; docs/security.md says what each protects). */
    uint32_t max_pending_handshakes;  /* 64: inbound connections still upgrading */
    uint32_t max_pending_per_ip;      /* 32: of those, from one IP address */
    uint32_t max_connections_per_ip;  /* 64: inbound connections from one IP address */
    uint32_t reserved_connections;    /* 32: of max_connections, kept for trusted/authorized peers */
    uint32_t reserved_handshakes;     /* 16: handshakes beyond the pending limits for the addresses
                                         of remembered peers (decided at Noise message 3) */
    uint32_t authorized_memory;       /* 256: PeerIds remembered as authorized … */
    uint32_t authorized_memory_seconds; /* 3600: … for this long after their last authorization */
    uint32_t first_byte_timeout_ms;   /* 2500: an inbound connection must send a byte by then */
    uint32_t handshake_timeout_ms;    /* 10000: TCP connect + the whole upgrade */
    size_t stranger_max_frame_bytes;  /* 65536: frame limit for a caller holding no scope */
    uint32_t stranger_max_streams;    /* 4: service streams at once for such a caller */
    uint32_t frame_timeout_ms;        /* 10000: a frame is whole this long after its header */
    size_t stream_budget_bytes;       /* 4 MiB held and owed per service stream */
    size_t peer_budget_bytes;         /* 8 MiB per peer over its streams */
    size_t process_budget_bytes;      /* 256 MiB over every service stream */
    uint32_t max_waits_per_peer;      /* 64: TaskQueue `wait` ops held at once per caller */
    uint32_t max_inflight_per_peer;   /* 16: requests in flight over a peer's service streams */

    /* NAT traversal (issue 16; docs/p2p-nat.md). The switches read the Python variables as the
     * discovery ones do: 0/false/no/off = off, any other value on. */
    config_tristate autonat;    /* auto = on in private and public; IPFS_ACCELERATE_PY_TASK_P2P_AUTONAT
                                   (twin IPFS_DATASETS_PY_…): ask peers to dial us back, answer them */
    config_tristate relay;      /* auto = on: dial /p2p-circuit addresses, accept relayed
                                   connections, reserve on relays while not known to be public;
                                   …_TASK_P2P_RELAY */
    config_tristate holepunch;  /* auto = on in private and public or with p2p.relays (DCUtR on
                                   relayed connections; listeners get SO_REUSEPORT);
                                   …_TASK_P2P_HOLEPUNCH */
    char **relays;              /* relays to reserve on: multiaddrs with /p2p/ (else, in private
                                   and public, bootstrap peers that offer the hop protocol) */
    size_t relay_count;
    uint32_t autonat_confidence; /* 3: agreeing AutoNAT servers before reachability changes */
    bool autonat_v2;            /* true: AutoNAT v2 (dial-request / dial-back) beside v1 whenever
                                   p2p.autonat is on */
    struct config_relay_hop {   /* p2p.relay_hop: serving as a relay (circuit relay v2 hop) */
      bool enabled;                     /* false; …_TASK_P2P_RELAY_HOP */
      uint32_t max_reservations;        /* 128; …_RELAY_HOP_MAX_RESERVATIONS */
      uint32_t max_reservations_per_ip; /* 8 */
      uint32_t reservation_ttl_seconds; /* 3600 */
      uint32_t max_circuits;            /* 64: relayed connections at once */
      uint32_t max_circuits_per_peer;   /* 8: per source and per destination peer */
      uint32_t limit_duration_seconds;  /* 120 per relayed connection (1..86400);
                                           …_RELAY_HOP_LIMIT_DURATION_S */
      uint64_t limit_data_bytes;        /* 131072 per direction of a relayed connection (≥ 1);
                                           …_RELAY_HOP_LIMIT_DATA_BYTES */
    } relay_hop;
  } p2p;

  /* Authorization (src/auth/, docs/auth.md). */
  struct {
    char *resource;             /* canonical URI of the MCP endpoint (RFC 8707 / 9728);
                                   NULL → the first HTTP listener's URL */
    char **authorization_servers; /* RFC 9728 authorization_servers */
    size_t authorization_server_count;
    struct {
      bool enabled;             /* the auth.jwt object is present */
      char *issuer;             /* required */
      char *audience;           /* required: the resource URI tokens must name in "aud" */
      char *jwks_file;          /* JWK Set; re-read when it changes or on SIGHUP */
      char **algorithms;        /* allow-list; default RS256, ES256, EdDSA */
      size_t algorithm_count;
      uint32_t leeway_s;        /* 60 */
      char *hs256_secret_env;   /* name of the variable holding the HS256 secret */
      char *hs256_secret;       /* its value, captured at load (never printed) */
      bool require_peer_binding; /* false: over libp2p, JWTs must carry the caller's PeerId */
      uint32_t cache_entries;   /* 256: recently verified tokens kept until their exp */
    } jwt;
  } auth;

  struct {
    config_tristate runner; /* auto (= on); off leaves MCP tasks to the workers;
                               PEERMCP_MCP_TASKS_RUNNER */
  } mcp_tasks;

  struct {
    config_access access; /* debug; PEERMCP_LOG_ACCESS: on, off, debug */
  } log;

  struct {
    bool enabled; /* true; --no-stdio */
    char **scopes; /* what the local stdio client holds; NULL (default) → every scope ("*") */
    size_t scope_count;
  } stdio;

  /* MCP over Streamable HTTP (src/transport/http.h). Off while `listen` is empty. */
  struct {
    char **listen;                    /* "HOST:PORT" (a bare PORT = 127.0.0.1:PORT); --http-listen
                                         (repeatable) and PEERMCP_HTTP_LISTEN (comma-separated)
                                         replace the list; checked by config_host_port_parse */
    size_t listen_count;
    char **allowed_origins;           /* Origin values accepted besides loopback ones */
    size_t allowed_origin_count;
    char **allowed_hosts;             /* Host values accepted besides loopback names and the
                                         listen addresses; "*" accepts any Host */
    size_t allowed_host_count;
    bool allow_unauthenticated;       /* false: a non-loopback listen address without
                                         authentication is refused at start-up */
    uint32_t session_idle_seconds;    /* 1800: a 2025-11-25 session unused this long ends */
    uint32_t max_sessions;            /* 1024 */
    uint32_t max_connections;         /* 1024 per listen address */
    size_t max_body_bytes;            /* 4 MiB: larger request bodies get 413 */
    size_t max_header_bytes;          /* 16 KiB: request line + headers; larger get 431 */
    uint32_t request_timeout_seconds; /* 10: a request must arrive whole within this */
    uint32_t idle_timeout_seconds;    /* 60: an idle keep-alive connection is closed */
    uint32_t sse_keepalive_seconds;   /* 15: comment line on a quiet SSE stream; 0 = never */
  } http;

  /* Metrics (docs/observability.md): GET /metrics on every HTTP listener, and a listener of its
   * own that serves only /metrics, /healthz and /readyz. */
  struct {
    char *listen; /* "HOST:PORT" (a bare PORT = 127.0.0.1:PORT) or NULL = none;
                     --metrics-listen, PEERMCP_METRICS_LISTEN */
  } metrics;
} config;

/* What the command line said, before merging. Strings are borrowed from argv, arrays owned. */
typedef struct config_args {
  const char *config_file; /* --config FILE */
  const char *state_dir;   /* --state-dir DIR */
  const char *log_level;   /* --log-level LEVEL */
  bool no_p2p;             /* --no-p2p */
  bool no_stdio;           /* --no-stdio */
  bool conformance_fixtures; /* --conformance-fixtures */
  const char **p2p_listen; /* --p2p-listen ADDR, repeatable */
  size_t p2p_listen_count;
  const char **http_listen; /* --http-listen HOST:PORT, repeatable */
  size_t http_listen_count;
  const char *p2p_profile;  /* --p2p-profile local|lan|private|public */
  const char *token_file;   /* --token-file FILE: a JWT or the shared token to present (never
                               on the command line itself, where ps shows it) */
  const char *metrics_listen; /* --metrics-listen HOST:PORT */
} config_args;

void config_args_init(config_args *args);
void config_args_free(config_args *args);

/* Removes the flags above from argv (both "--flag VALUE" and "--flag=VALUE"), shifting the
 * remaining arguments down and updating *argc; argv[0] is kept. Unknown arguments are left
 * for the caller; "--" stops the scan. Returns 0, or -EINVAL (a flag without its value, a bad
 * log level) with a message in err. */
int config_args_parse(config_args *args, int *argc, char **argv, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* One line per flag handled by config_args_parse, for a subcommand's --help. */
const char *config_args_help(void);

/* Builds the configuration: defaults, then the file (args->config_file, else $PEERMCP_CONFIG,
 * else the default path if it exists), then the environment, then args (may be NULL).
 * On success *cfg is filled (free with config_free). On failure returns -EINVAL (bad file
 * content or value), -ENOENT (an explicitly named file is missing), -EFBIG, -ENOMEM or another
 * -errno, writes a message to err, and leaves *cfg zeroed. */
int config_load(config *cfg, const config_args *args, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Like config_load, but from file text already in memory (`name` is used in messages and to
 * resolve relative paths; may be NULL). The environment and args still apply. For tests. */
int config_load_text(config *cfg, const char *text, size_t len, const char *name, const config_args *args,
                     char *err, size_t errlen) __attribute__((warn_unused_result));

void config_free(config *cfg);

/* The default config file path ($XDG_CONFIG_HOME/peermcp/config.json, else
 * ~/.config/peermcp/config.json) and state dir; malloc'd, caller frees. NULL if neither
 * XDG_* nor HOME is set, or on ENOMEM. */
char *config_default_file(void);
char *config_default_state_dir(void);

/* Parses an http.listen entry: "PORT", "HOST:PORT" or "[IPv6]:PORT", HOST an IPv4 or IPv6
 * literal or "localhost" (= 127.0.0.1); a bare PORT means 127.0.0.1. Writes the numeric
 * address text (no brackets) into host[hostcap] and the port (0 = any free port). Returns 0 or
 * -EINVAL. */
int config_host_port_parse(const char *s, char *host, size_t hostcap, uint16_t *port)
    __attribute__((warn_unused_result));

/* The multiaddr of p2p.peers[name], or NULL. */
const char *config_peer_by_name(const config *cfg, const char *name);

/* The public libp2p bootstrap peers (the `public` profile's default list), NULL-terminated. */
extern const char *const config_public_bootstrap[];

/* True when `name` is listed in tools.disabled. */
bool config_tool_disabled(const config *cfg, const char *name);

/* The effective configuration as a JSON object (token redacted; the values captured from the
 * environment for command tools and PATH are left out), for `server_info`/debugging. */
json_t *config_to_json(const config *cfg);

#endif
