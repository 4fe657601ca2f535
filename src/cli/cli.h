/* cli.h — the peermcp subcommands. main.c parses nothing but the subcommand name and hands
 * argv (argv[0] = the subcommand) to one of these. Each parses its flags, loads the
 * configuration, builds the parts it needs through the node (src/node/node.h; `id` needs
 * none) and prints the result. Each returns the process exit code: 0 success, 1 failure of
 * the operation, 2 usage error. */
#ifndef PEERMCP_CLI_CLI_H
#define PEERMCP_CLI_CLI_H

int cli_serve(int argc, char **argv);  /* src/cli/serve.c: MCP over stdio + the P2P service */
int cli_id(int argc, char **argv);     /* src/cli/p2p.c: print the PeerId */
int cli_ping(int argc, char **argv);   /* src/cli/p2p.c: libp2p ping a multiaddr */
int cli_perf(int argc, char **argv);   /* src/cli/p2p.c: /perf/1.0.0 client */
int cli_call(int argc, char **argv);   /* src/cli/client.c: call a tool (local or --peer) */
int cli_task(int argc, char **argv);   /* src/cli/client.c: task submit|get|wait|list|cancel */
int cli_cache(int argc, char **argv);  /* src/cli/client.c: cache get|set|has|delete */
int cli_status(int argc, char **argv); /* src/cli/client.c: status --peer */
int cli_worker(int argc, char **argv); /* src/cli/client.c: run a worker */
int cli_peers(int argc, char **argv);  /* src/cli/peers.c: print the saved peer table */
int cli_queue(int argc, char **argv);  /* src/cli/queue.c: queue import --from-peer */

#endif
