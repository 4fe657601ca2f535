/* common.c — shared parts of the subcommands (see common.h). */
#include "cli/common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/help.h"
#include "util/jwrite.h"
#include "util/log.h"

/* ---------- configuration ---------- */

bool cli_wants_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--") == 0) return false;
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) return true;
  }
  return false;
}

int cli_load_config(const char *cmd, int *argc, char **argv, config_args *args, config *cfg) {
  char err[1024];
  config_args_init(args);
  if (config_args_parse(args, argc, argv, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp %s: %s\n", cmd, err);
    config_args_free(args);
    return CLI_EXIT_USAGE;
  }
  if (strcmp(cmd, "serve") != 0) {
    const char *serve_only = args->no_p2p ? "--no-p2p"
                             : args->no_stdio ? "--no-stdio"
                             : args->p2p_listen_count ? "--p2p-listen"
                             : args->http_listen_count ? "--http-listen"
                             : args->metrics_listen && strcmp(cmd, "worker") != 0 ? "--metrics-listen"
                             : args->conformance_fixtures ? "--conformance-fixtures"
                                                          : NULL;
    if (serve_only) {
      fprintf(stderr, "peermcp %s: %s is an option of `peermcp serve`%s, not of `%s`\n", cmd, serve_only,
              strcmp(serve_only, "--metrics-listen") == 0 ? " and `peermcp worker`" : "", cmd);
      config_args_free(args);
      return CLI_EXIT_USAGE;
    }
  }
  if (cli_wants_help(*argc, argv)) { /* --help needs no configuration (it may be the broken part) */
    memset(cfg, 0, sizeof *cfg);
    return 0;
  }
  if (config_load(cfg, args, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp %s: %s\n", cmd, err);
    config_args_free(args);
    return CLI_EXIT_FAIL;
  }
  /* A client prints its answer on stdout; its own chatter stays out of the way unless asked.
   * serve and worker run for long: their log is what an operator reads (info by default). */
  bool daemon = strcmp(cmd, "serve") == 0 || strcmp(cmd, "worker") == 0;
  if (!daemon && !args->log_level) log_set_level(cfg->log_level > LOG_WARNING ? cfg->log_level : LOG_WARNING);
  else log_set_level(cfg->log_level);
  return 0;
}

/* ---------- numbers ---------- */

static bool all_digits(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (!isdigit((unsigned char)*s)) return false;
  return true;
}

int cli_parse_uint(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out, char *err,
                   size_t errlen) {
  if (!text) {
    snprintf(err, errlen, "%s needs a value", flag);
    return -EINVAL;
  }
  if (!all_digits(text)) {
    snprintf(err, errlen, "%s: \"%s\" is not a whole number (expected %llu..%llu)", flag, text,
             (unsigned long long)min, (unsigned long long)max);
    return -EINVAL;
  }
  errno = 0;
  unsigned long long v = strtoull(text, NULL, 10);
  if (errno || v < min || v > max) {
    snprintf(err, errlen, "%s: %s is out of range %llu..%llu", flag, text, (unsigned long long)min,
             (unsigned long long)max);
    return -EINVAL;
  }
  *out = v;
  return 0;
}

int cli_parse_seconds(const char *flag, const char *text, double max, double *out, char *err, size_t errlen) {
  if (!text) {
    snprintf(err, errlen, "%s needs a value", flag);
    return -EINVAL;
  }
  char *end;
  errno = 0;
  double v = strtod(text, &end);
  if (end == text || *end || errno || !isfinite(v) || !isdigit((unsigned char)text[0])) {
    snprintf(err, errlen, "%s: \"%s\" is not a number of seconds", flag, text);
    return -EINVAL;
  }
  if (!(v > 0) || v > max) {
    snprintf(err, errlen, "%s: %s is out of range (more than 0, at most %g seconds)", flag, text, max);
    return -EINVAL;
  }
  *out = v;
  return 0;
}

int cli_parse_size(const char *flag, const char *text, uint64_t min, uint64_t max, uint64_t *out, char *err,
                   size_t errlen) {
  if (!text) {
    snprintf(err, errlen, "%s needs a value", flag);
    return -EINVAL;
  }
  size_t nd = 0;
  while (isdigit((unsigned char)text[nd])) nd++;
  const char *suf = text + nd;
  uint64_t mult = 0;
  static const struct {
    const char *s;
    uint64_t m;
  } k_suf[] = {{"", 1},           {"B", 1},           {"K", 1ull << 10}, {"KB", 1ull << 10}, {"KiB", 1ull << 10},
               {"M", 1ull << 20}, {"MB", 1ull << 20}, {"MiB", 1ull << 20}, {"G", 1ull << 30}, {"GB", 1ull << 30},
               {"GiB", 1ull << 30}};
  for (size_t i = 0; i < sizeof k_suf / sizeof k_suf[0] && !mult; i++)
    if (strcasecmp(suf, k_suf[i].s) == 0) mult = k_suf[i].m;
  if (nd == 0 || !mult) {
    snprintf(err, errlen, "%s: \"%s\" is not a size (a whole number of bytes with an optional K, M or G suffix, e.g. 64M)",
             flag, text);
    return -EINVAL;
  }
  errno = 0;
  unsigned long long v = strtoull(text, NULL, 10);
  if (errno || v > max / mult || v * mult < min) {
    snprintf(err, errlen, "%s: %s is out of range %llu..%llu bytes", flag, text, (unsigned long long)min,
             (unsigned long long)max);
    return -EINVAL;
  }
  *out = v * mult;
  return 0;
}

/* ---------- output ---------- */

void cli_print_json(const json_t *v) {
  char *s = jwrite_dumps(v, 0); /* numbers in their shortest exact form (util/jwrite.h) */
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
  }
  fflush(stdout);
}

