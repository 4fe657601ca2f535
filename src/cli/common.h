/* common.h — what every subcommand shares: loading the configuration with the flags a
 * command may take, numbers parsed with a reason when they are refused, JSON on stdout, and
 * dial errors turned into sentences.
 *
 * Exit codes (every command): 0 success, 1 the operation failed, 2 usage error. Messages go to
 * stderr as "peermcp CMD: …", once. Dial errors are named by service/dial_error.h. Main
 * thread only. */
#ifndef PEERMCP_CLI_COMMON_H
#define PEERMCP_CLI_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "service/dial_error.h"

#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_USAGE 2

/* Parses the shared flags out of argv (argv[0] = the command name), refusing those of `serve`
 * for any other command, and loads the configuration. --help is left in argv for the command.
 * Returns 0, or the exit code after printing why (2 bad flag, 1 bad configuration). On 0 the
 * caller frees cfg and args. */
int cli_load_config(const char *cmd, int *argc, char **argv, config_args *args, config *cfg)
    __attribute__((warn_unused_result));

/* True when argv (past argv[0]) holds -h or --help. */
bool cli_wants_help(int argc, char **argv);

/* Numbers from the command line. Each returns 0, or -EINVAL after writing why to err
 * ("-n: \"abc\" is not a whole number", "--slots: 0 is out of range 1..256"). */
int cli_parse_uint(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out, char *err,
                   size_t errlen) __attribute__((warn_unused_result));
/* Seconds: a decimal number > 0 (fractions allowed) and <= max. */
int cli_parse_seconds(const char *flag, const char *text, double max, double *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));
/* A byte count: digits with an optional K, M or G suffix (powers of 1024; "KiB", "MB" … also
 * accepted, all binary), in min..max. */
int cli_parse_size(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out, char *err,
                   size_t errlen) __attribute__((warn_unused_result));

/* One JSON value and a newline on stdout, flushed. */
void cli_print_json(const json_t *v);

#endif
