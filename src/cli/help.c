/* help.c — the command line's help text, and its man-page rendering (see help.h). Edit the
 * table below to change `--help` and peermcp(1) together. */
#include "cli/help.h"

#include <string.h>

/* ---------- shared flags ---------- */

static const cli_flag_help k_config_flags[] = {
    {"--config FILE", "configuration file (env PEERMCP_CONFIG; default\n"
                      "$XDG_CONFIG_HOME/peermcp/config.json, read when it exists)"},
    {"--state-dir DIR", "state directory: identity key, queue, cache, announce file (env\n"
                        "PEERMCP_STATE_DIR; default $XDG_STATE_HOME/peermcp, else ~/.local/state/peermcp)"},
    {"--log-level LEVEL", "debug, info, notice, warning, error, critical or off (env PEERMCP_LOG_LEVEL);\n"
                          "logs are JSON lines on stderr"},
    {"--p2p-profile NAME", "discovery: local (default: none), lan (mDNS), private (a DHT over\n"
                           "p2p.bootstrap), public (the IPFS DHT) (env PEERMCP_P2P_PROFILE)"},
    {"--token-file FILE", "a JWT or the shared token to present to peers (mode 600; never give a\n"
                          "token on the command line, where ps shows it)"},
    {NULL, NULL},
};

static const cli_flag_help k_serve_flags[] = {
    {"--no-p2p", "do not run the libp2p peer (the p2p_* tools are not offered)"},
    {"--no-stdio", "do not serve MCP on stdin/stdout"},
    {"--p2p-listen ADDR", "libp2p listen multiaddr, /ip4|ip6/HOST/tcp/PORT, or /unix/PATH for peers on\n"
                          "this host (a socket file made 0600, never advertised) (repeatable; replaces\n"
                          "p2p.listen)"},
    {"--http-listen HOST:PORT", "serve MCP over Streamable HTTP at http://HOST:PORT/mcp (repeatable;\n"
                                "replaces http.listen; env PEERMCP_HTTP_LISTEN; a bare PORT is 127.0.0.1:PORT)"},
    {"--metrics-listen HOST:PORT", "serve /metrics, /healthz and /readyz (nothing else) at http://HOST:PORT\n"
                                   "(metrics.listen; env PEERMCP_METRICS_LISTEN; a bare PORT is 127.0.0.1:PORT)"},
    {"--conformance-fixtures", "serve the MCP conformance suite's fixtures (tests only)"},
    {NULL, NULL},
};

#define PEER_FLAG                                                                                        \
  {"--peer TARGET", "act on another node over /mcp+p2p/1.0.0: /ip4|ip6/HOST/tcp/PORT/p2p/PEERID or\n"      \
                    "/unix/PATH/p2p/PEERID (same host), a name\n"                                           \
                    "of p2p.peers, or a bare PeerId (announce file, peer table, then mDNS / the DHT when\n"  \
                    "p2p.profile turns them on); without it, act on the local state directory"}
#define TIMEOUT_FLAG(what) {"--timeout SECONDS", what}

/* ---------- the commands ---------- */

static const cli_flag_help k_id_flags[] = {
    {"--json", "print {\"peer_id\", \"state_dir\", \"multiaddr\"} instead of the bare PeerId (multiaddr:\n"
               "what a `serve` of this state directory announced, when there is one)"},
    {"--multiaddr", "print only the multiaddr (with /p2p/) that a `serve` of this state directory\n"
                    "announced in its announce.json; exit 1 when there is none"},
    {NULL, NULL},
};

static const cli_flag_help k_ping_flags[] = {
    {"-n COUNT", "pings to send, one after another (1..100000; default 1)"},
    {"--json", "print one JSON object with the summary instead of text lines"},
    {NULL, NULL},
};

static const cli_flag_help k_perf_flags[] = {
    {"--upload SIZE", "bytes to send (default 10M; a number with an optional K, M or G suffix,\n"
                      "powers of 1024; at most 16G)"},
    {"--download SIZE", "bytes to ask back (default 10M; same form)"},
    {NULL, NULL},
};

static const cli_flag_help k_call_flags[] = {
    PEER_FLAG,
    TIMEOUT_FLAG("deadline of the call (default 30)"),
    {NULL, NULL},
};

static const cli_flag_help k_task_flags[] = {
    PEER_FLAG,
    {"--type TYPE", "submit: task type (default tool.call: the payload names the tool, as\n"
                    "{\"tool\": NAME, \"args\": {…}}; a command tool's name runs that tool with the payload)"},
    {"--model NAME", "submit: model_name of the task"},
    {"--idempotency-key KEY", "submit: a second submit with the same key returns the first task"},
    {"--status LIST", "list: only tasks in these states (queued, running, completed, failed,\n"
                      "cancelled; comma-separated)"},
    {"--limit N", "list: at most N tasks (1..1000; default 50)"},
    TIMEOUT_FLAG("wait: how long to wait for the task to end (default 60)"),
    {NULL, NULL},
};

static const cli_flag_help k_cache_flags[] = {
    PEER_FLAG,
    {"--ttl SECONDS", "set: expire the entry after this long (default: cache.default_ttl_seconds)"},
    {NULL, NULL},
};

static const cli_flag_help k_status_flags[] = {
    PEER_FLAG,
    {"--detail", "include queue counts, workers and peers"},
    {NULL, NULL},
};

static const cli_flag_help k_worker_flags[] = {
    {"--peer TARGET", "claim tasks from this node (repeatable: the worker serves each in turn; a\n"
                      "multiaddr with /p2p/, a name of p2p.peers or a PeerId); without it, from the local queue"},
    {"--discover", "also serve every peer of the rendezvous namespace (p2p.rendezvous_ns; needs\n"
                   "mDNS or the DHT: p2p.profile lan, private or public)"},
    {"--slots N", "tasks run at once (1..256; default 1)"},
    {"--once", "run one task (or find none), print the summary and exit; exit 1 when no\n"
               "source could be asked (unreachable, or it refused this worker)"},
    {"--worker-id ID", "claim under this id (default: this node's PeerId, or local-worker)"},
    {"--lease SECONDS", "lease asked for each task, renewed while it runs (1..86400; default 60)"},
    {"--metrics-listen HOST:PORT", "serve /metrics, /healthz and /readyz (nothing else) at http://HOST:PORT\n"
                                   "(metrics.listen; env PEERMCP_METRICS_LISTEN; a bare PORT is 127.0.0.1:PORT)"},
    {NULL, NULL},
};

static const cli_flag_help k_queue_flags[] = {
    {"--from-peer TARGET", "the node to copy from (a multiaddr with /p2p/PEERID): a running peermcp\n"
                           "or Python TaskQueue node"},
    {"--status LIST", "copy only tasks in these states (comma-separated; default\n"
                      "queued,running,completed,failed,cancelled)"},
    {"--path FILE", "check: the database to check instead of queue.path"},
    {NULL, NULL},
};

static const cli_flag_help k_peers_flags[] = {
    {"--source S", "only peers heard of from S: manual, identify, mdns, dht, bootstrap, rendezvous\n"
                   "(repeatable: any of them)"},
    {"--alive", "only peers contacted within p2p.peer_timeout_seconds"},
    {"--limit N", "at most N rows (1..1024; default 100)"},
    {NULL, NULL},
};

static const cli_cmd_help k_cmds[] = {
    {"serve", "run the MCP server (stdio, HTTP) and the libp2p peer",
     "peermcp serve [OPTIONS]",
     "Serves MCP (JSON-RPC, one message per line) on stdin/stdout, both the 2026-07-28 and the\n"
     "2025-11-25 … 2024-11-05 revisions; with --http-listen also over Streamable HTTP at\n"
     "http://HOST:PORT/mcp; and runs the libp2p peer that serves trusted peers its remote tools,\n"
     "its task queue and its cache over /mcp+p2p/1.0.0. Queued tasks run on in-process workers\n"
     "(p2p.workers, by default one per CPU). Logs are JSON lines on stderr.\n"
     "\n"
     "Exits 0 when stdin closes (after in-flight calls finish; with HTTP listeners only stdio\n"
     "closes then) or on SIGINT/SIGTERM; a second signal cancels what still runs. A configuration\n"
     "or state-directory error, or a flag set that serves nothing (--no-stdio --no-p2p without\n"
     "--http-listen; --no-p2p with --p2p-listen), exits 1 or 2 before anything starts.",
     NULL, CLI_FLAGS_CONFIG | CLI_FLAGS_SERVE,
     "peermcp serve\n"
     "peermcp serve --no-p2p\n"
     "peermcp serve --no-stdio --http-listen 127.0.0.1:8080"},
    {"id", "print this node's PeerId",
     "peermcp id [--json | --multiaddr] [OPTIONS]",
     "Prints the PeerId of <state-dir>/identity.key, creating the key (mode 0600) if there is none;\n"
     "with --multiaddr, the address to give other nodes as --peer.",
     k_id_flags, CLI_FLAGS_CONFIG,
     "peermcp id\n"
     "peermcp id --multiaddr --state-dir /tmp/node-a"},
    {"ping", "libp2p-ping a peer and print the round-trip times",
     "peermcp ping MULTIADDR [-n COUNT] [--json] [OPTIONS]",
     "Dials MULTIADDR (/ip4|ip6/HOST/tcp/PORT[/p2p/PEERID]) and sends COUNT /ipfs/ping/1.0.0 pings,\n"
     "printing one line per reply and a summary like ping(8): sent, received, loss, min/avg/max.\n"
     "Exits 0 when every ping was answered, 1 otherwise, 2 on a usage error.",
     k_ping_flags, CLI_FLAGS_CONFIG,
     "peermcp ping /ip4/127.0.0.1/tcp/9710/p2p/12D3KooW… -n 5"},
    {"perf", "measure throughput to a peer with /perf/1.0.0",
     "peermcp perf MULTIADDR [--upload SIZE] [--download SIZE] [OPTIONS]",
     "Runs the /perf/1.0.0 client against MULTIADDR: uploads SIZE bytes, then downloads SIZE bytes,\n"
     "and prints one JSON object with the byte counts, the time of each phase and its rate in\n"
     "Mbit/s. The peer must serve /perf/1.0.0: peermcp does only with p2p.enable_perf (env\n"
     "PEERMCP_P2P_ENABLE_PERF=1).",
     k_perf_flags, CLI_FLAGS_CONFIG,
     "peermcp perf /ip4/127.0.0.1/tcp/9710/p2p/12D3KooW… --upload 64M --download 64M"},
    {"call", "call a tool, here or on a peer",
     "peermcp call [--peer TARGET] [--timeout SECONDS] TOOL [ARGS_JSON]",
     "Calls TOOL with the JSON object ARGS_JSON (default {}) and prints the MCP CallToolResult.\n"
     "Without --peer the tool runs in this process with the tools `serve` would offer (the same\n"
     "configuration file, including its command tools). Exits 0 when the result is not an error.",
     k_call_flags, CLI_FLAGS_CONFIG,
     "peermcp call server_info\n"
     "peermcp call --peer /ip4/192.0.2.10/tcp/9710/p2p/12D3KooW… word_count '{\"text\":\"a b c\"}'"},
    {"task", "submit, inspect, wait for, list and cancel queued tasks",
     "peermcp task submit [--peer TARGET] [--type TYPE] [--model NAME] [--idempotency-key KEY] PAYLOAD_JSON\n"
     "peermcp task get|cancel [--peer TARGET] TASK_ID\n"
     "peermcp task wait [--peer TARGET] [--timeout SECONDS] TASK_ID\n"
     "peermcp task list [--peer TARGET] [--status LIST] [--limit N]",
     "Speaks the TaskQueue operations to the local queue or, with --peer, to another node, and\n"
     "prints the reply as one JSON object. A task id that does not exist is an error\n"
     "({\"ok\": false, \"error\": \"not_found\"}, exit 1). `wait` exits 0 when the task ended (whatever\n"
     "its status) and 1 when the wait timed out.",
     k_task_flags, CLI_FLAGS_CONFIG,
     "peermcp task submit '{\"tool\":\"server_info\",\"args\":{}}'\n"
     "peermcp task wait --timeout 30 3f2c…\n"
     "peermcp task list --status queued,running"},
    {"cache", "read and write the shared TTL cache",
     "peermcp cache get|has|delete [--peer TARGET] KEY\n"
     "peermcp cache set [--peer TARGET] [--ttl SECONDS] KEY VALUE_JSON",
     "Reads or writes the cache of the local state directory or, with --peer, of another node, and\n"
     "prints the reply as one JSON object (exit 1 when it says ok: false; a missing key is\n"
     "{\"ok\": true, \"hit\": false}).",
     k_cache_flags, CLI_FLAGS_CONFIG,
     "peermcp cache set --ttl 3600 greeting '\"hello\"'\n"
     "peermcp cache get greeting"},
    {"status", "print a node's status (this one, or a peer's)",
     "peermcp status [--peer TARGET] [--detail]",
     "Prints the TaskQueue status reply: PeerId, capabilities (task types its workers run), and\n"
     "with --detail the queue counts. Any peer may ask for it.",
     k_status_flags, CLI_FLAGS_CONFIG,
     "peermcp status --detail\n"
     "peermcp status --peer /ip4/192.0.2.10/tcp/9710/p2p/12D3KooW…"},
    {"worker", "claim and run queued tasks (from the local queue or from peers)",
     "peermcp worker [--peer TARGET]... [--discover] [--slots N] [--once] [--worker-id ID] [--lease SECONDS]",
     "Runs a worker that claims tasks of the types it can run (tool.call and its remotely callable\n"
     "command tools), runs each through its tools, renews the lease while it runs and reports\n"
     "the result. Each task claimed, finished, failed or released is logged at info; a source that\n"
     "cannot be reached or refuses the worker is logged at warning. Stops on SIGINT/SIGTERM\n"
     "(running tasks are released after a grace period) and prints a JSON summary.",
     k_worker_flags, CLI_FLAGS_CONFIG,
     "peermcp worker --peer /ip4/192.0.2.10/tcp/9710/p2p/12D3KooW… --slots 4\n"
     "peermcp worker --once"},
    {"queue", "copy the tasks of another TaskQueue node into the local queue; check the queue database",
     "peermcp queue import --from-peer TARGET [--status LIST]\n"
     "peermcp queue check [--path FILE]",
     "Reads the tasks of a running peermcp or Python TaskQueue node over /mcp+p2p/1.0.0 (the `list`\n"
     "and `get` operations) and writes them into the local queue, keeping task ids, idempotency\n"
     "keys, payloads, results and states (a running task is imported as queued: its lease belongs\n"
     "to the old node). A task already here is skipped, so running it twice is safe. Prints\n"
     "{\"ok\", \"listed\", \"imported\", \"skipped\", \"failed\"}.\n"
     "\n"
     "`check` runs SQLite's integrity_check and the queue's own invariants on queue.path (or\n"
     "FILE) read-only, safe while a node serves it; prints the report, exits 1 with the problem\n"
     "when the database is not healthy. Recovery: docs/store.md.",
     k_queue_flags, CLI_FLAGS_CONFIG,
     "peermcp queue import --from-peer /ip4/192.0.2.10/tcp/9710/p2p/12D3KooW… --status queued,running\n"
     "peermcp queue check"},
    {"peers", "print the peer table a serve of this state directory saved",
     "peermcp peers [--source S]... [--alive] [--limit N]",
     "Prints the peer table as the serving node last saved it in <state-dir>/peers (written while\n"
     "`serve` runs and at its shutdown) as one JSON object, most recently seen first: peer_id,\n"
     "addrs, sources, first_seen, last_seen, connected, latency_ms, agent, protocols. Sends\n"
     "nothing on the network.",
     k_peers_flags, CLI_FLAGS_CONFIG,
     "peermcp peers --alive\n"
     "peermcp peers --source mdns --limit 10"},
};

const cli_cmd_help *cli_help_commands(size_t *n) {
  *n = sizeof k_cmds / sizeof k_cmds[0];
  return k_cmds;
}

const cli_cmd_help *cli_help_find(const char *name) {
  for (size_t i = 0; name && i < sizeof k_cmds / sizeof k_cmds[0]; i++)
    if (strcmp(k_cmds[i].name, name) == 0) return &k_cmds[i];
  return NULL;
}

/* ---------- text ---------- */

/* Prints `text` with every line indented by `indent` spaces. */
static void put_indented(FILE *f, const char *text, int indent) {
  const char *p = text;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n) fprintf(f, "%*s%.*s\n", indent, "", (int)n, p);
    else fputc('\n', f);
    p = e ? e + 1 : p + n;
  }
}

#define HELP_WIDTH 79
#define FLAG_COL 26

/* One flag: its name in two columns' first, its text (line breaks in the table are only
 * places to break) wrapped at HELP_WIDTH under the second. */
static void put_flag(FILE *f, const cli_flag_help *v) {
  int col;
  if (strlen(v->flag) <= FLAG_COL - 4) {
    col = fprintf(f, "  %-*s", FLAG_COL - 3, v->flag);
  } else {
    fprintf(f, "  %s\n", v->flag);
    col = fprintf(f, "%*s", FLAG_COL - 1, "");
  }
  const char *p = v->text;
  bool first = true;
  while (*p) {
    while (*p == ' ' || *p == '\n') p++;
    size_t n = strcspn(p, " \n");
    if (!n) break;
    if (!first && col + 1 + (int)n > HELP_WIDTH) {
      fprintf(f, "\n%*s", FLAG_COL - 1, "");
      col = FLAG_COL - 1;
      first = true;
    }
    col += fprintf(f, "%s%.*s", first ? " " : " ", (int)n, p);
    first = false;
    p += n;
  }
  fputc('\n', f);
}

static void put_flags(FILE *f, const cli_flag_help *v) {
  for (; v && v->flag; v++) put_flag(f, v);
}

void cli_help_print_top(FILE *f) {
  fprintf(f, "usage: peermcp [--version] [--help] COMMAND [ARGS]\n\n"
             "peermcp is an MCP server with a built-in libp2p peer.\n\ncommands:\n");
  for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++) fprintf(f, "  %-8s %s\n", k_cmds[i].name, k_cmds[i].summary);
  fprintf(f, "\nusage of each:\n");
  for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++) put_indented(f, k_cmds[i].synopsis, 2);
  fprintf(f, "\nEvery command takes --config FILE, --state-dir DIR and --log-level LEVEL.\n"
             "`peermcp COMMAND --help` describes a command, its flags and an example.\n");
}

void cli_help_print(FILE *f, const char *name) {
  const cli_cmd_help *c = cli_help_find(name);
  if (!c) return;
  fprintf(f, "usage:\n");
  put_indented(f, c->synopsis, 2);
  fputc('\n', f);
  put_indented(f, c->description, 0);
  if (c->flags && c->flags->flag) {
    fprintf(f, "\noptions:\n");
    put_flags(f, c->flags);
  }
  if (c->shared & CLI_FLAGS_SERVE) {
    fprintf(f, "\nserve options:\n");
    put_flags(f, k_serve_flags);
  }
  if (c->shared & CLI_FLAGS_CONFIG) {
    fprintf(f, "\ncommon options:\n");
    put_flags(f, k_config_flags);
  }
  put_flag(f, &(const cli_flag_help){"-h, --help", "this text"});
  fprintf(f, "\nexample%s:\n", strchr(c->examples, '\n') ? "s" : "");
  put_indented(f, c->examples, 2);
}

void cli_help_print_usage(FILE *f, const char *name) {
  const cli_cmd_help *c = cli_help_find(name);
  if (!c) return;
  fprintf(f, "usage:\n");
  put_indented(f, c->synopsis, 2);
  fprintf(f, "`peermcp %s --help` says more.\n", c->name);
}

/* ---------- man page ---------- */

/* roff-escapes one line: backslashes, a leading '.' or '\'', and '-' in flags. */
static void man_line(FILE *f, const char *p, size_t n) {
  if (n && (p[0] == '.' || p[0] == '\'')) fputs("\\&", f);
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '\\') fputs("\\e", f);
    else if (c == '-') fputs("\\-", f);
    else fputc(c, f);
  }
  fputc('\n', f);
}

/* Paragraph text: lines joined by roff; an empty line starts a new paragraph. */
static void man_text(FILE *f, const char *text) {
  const char *p = text;
  while (*p) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (n == 0) fputs(".PP\n", f);
    else man_line(f, p, n);
    p = e ? e + 1 : p + n;
  }
}

/* Lines kept as they are (synopses, examples). */
static void man_verbatim(FILE *f, const char *text) {
  fputs(".PP\n.nf\n.RS 4\n", f);
  man_text(f, text);
  fputs(".RE\n.fi\n", f);
}

static void man_flags(FILE *f, const cli_flag_help *v) {
  for (; v && v->flag; v++) {
    fputs(".TP\n.B ", f);
    man_line(f, v->flag, strlen(v->flag));
    man_text(f, v->text);
  }
}

void cli_help_print_man(FILE *f) {
  fprintf(f, ".\\\" Generated from src/cli/help.c by src/cli/mkman.c; edit help.c, not this file.\n"
             ".TH PEERMCP 1 \"\" \"peermcp %s\" \"User Commands\"\n"
             ".SH NAME\npeermcp \\- MCP server with a built-in libp2p peer\n"
             ".SH SYNOPSIS\n.B peermcp\n[\\fB\\-\\-version\\fR] [\\fB\\-\\-help\\fR]\n.I COMMAND\n[\\fIARGS\\fR]\n"
             ".SH DESCRIPTION\n"
             "peermcp is a Model Context Protocol (MCP) server: built\\-in tools and command tools declared in\n"
             "a configuration file, a durable task queue, a TTL cache, and a libp2p peer through which\n"
             "trusted peers call each other's tools, share their queues and caches, and lend each other\n"
             "workers. Every command prints its result on stdout (JSON, except the PeerId of \\fBid\\fR and\n"
             "the lines of \\fBping\\fR without \\fB\\-\\-json\\fR) and exits 0 on success, 1 when the\n"
             "operation failed, 2 on a usage error.\n"
             ".SH COMMANDS\n",
          PEERMCP_VERSION);
  for (size_t i = 0; i < sizeof k_cmds / sizeof k_cmds[0]; i++) {
    const cli_cmd_help *c = &k_cmds[i];
    fputs(".SS ", f);
    man_line(f, c->name, strlen(c->name));
    man_verbatim(f, c->synopsis);
    fputs(".PP\n", f);
    man_text(f, c->description);
    if (c->flags && c->flags->flag) man_flags(f, c->flags);
    if (c->shared & CLI_FLAGS_SERVE) man_flags(f, k_serve_flags);
    fputs(".PP\nExample:\n", f);
    man_verbatim(f, c->examples);
  }
  fputs(".SH COMMON OPTIONS\nEvery command takes these:\n", f);
  man_flags(f, k_config_flags);
  man_flags(f, (const cli_flag_help[]){{"-h, --help", "the command's help"}, {NULL, NULL}});
  fputs(".SH FILES\n"
        ".TP\n.I $XDG_CONFIG_HOME/peermcp/config.json\nthe configuration file (~/.config/peermcp/config.json)\n"
        ".TP\n.I $XDG_STATE_HOME/peermcp/\nthe state directory (~/.local/state/peermcp): identity.key, queue.sqlite3,\n"
        "cache/, announce.json, peers, http.json\n"
        ".SH ENVIRONMENT\n"
        "PEERMCP_CONFIG, PEERMCP_STATE_DIR, PEERMCP_LOG_LEVEL, PEERMCP_HTTP_LISTEN and the variables\n"
        "of the Python services (IPFS_ACCELERATE_PY_TASK_P2P_TOKEN, …) listed in docs/config.md.\n"
        ".SH SEE ALSO\n"
        "The README and docs/ of the peermcp source tree; docs/config.md lists every key, variable\n"
        "and flag.\n",
        f);
}
