/* command.h — command tools: tools a user declares in the config file (tools.commands[]) that
 * run a program. See docs/command-tools.md.
 *
 * A call spawns argv (never through a shell) in a new process group, with cwd and an
 * environment made only of the env_allow variables (captured by config_load) and the fixed
 * env entries, writes the validated arguments as one line of JSON to its stdin, and captures
 * stdout (up to max_output_bytes) and the tail of stderr. Exit 0 → the result: stdout parsed as
 * JSON (output "json", or "auto" when it parses), else stdout as text. A non-zero exit, a
 * signal, output over the cap, a timeout or a cancel is a tool error carrying exit_code /
 * signal and a bounded stderr tail. The first stderr lines are also sent as "debug" log
 * notifications to the caller while the program runs. On timeout or cancel the whole process group gets SIGTERM,
 * then SIGKILL after a grace period, and is always reaped; stragglers left in the group after
 * the program exits are killed too. Every descriptor is O_CLOEXEC and the child closes
 * everything above 2.
 *
 * Handlers block (they wait for the child) and so run on the dispatcher's worker pool.
 * Register on the main thread at start-up. */
#ifndef PEERMCP_TOOLS_COMMAND_H
#define PEERMCP_TOOLS_COMMAND_H

#include <stddef.h>

#include "config/config.h"
#include "mcp/registry.h"

/* Bytes of stderr kept for error messages. */
#define TOOLS_COMMAND_STDERR_TAIL 4096
/* How long a process group gets between SIGTERM and SIGKILL. */
#define TOOLS_COMMAND_KILL_GRACE_MS 500

/* Validates and registers every tools.commands[] entry of cfg that tools.disabled does not
 * name. A declaration whose input_schema is not a valid JSON Schema (checked for every entry,
 * disabled ones too; message "file:line:col: tools.commands[i].input_schema: why", as config
 * errors read), whose program cannot be found or executed (searched in cfg->env_path), whose
 * cwd is not a directory, or which the registry refuses (duplicate name, …) fails start-up:
 * returns -EINVAL / -ENOENT / -EACCES / -EEXIST with a message naming the file, line and entry
 * in err. The child's environment is built from what config_load captured (env_pass, env);
 * nothing here reads the process environment. */
int tools_command_register(mcp_registry *reg, const config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Resolves a program the way registration does (a name without '/' is searched in search_path,
 * a PATH-style list; NULL or "" → /usr/local/bin:/usr/bin:/bin) and checks it is an executable
 * regular file. On success *path_out is malloc'd (caller frees). 0, -ENOENT, -EACCES or -ENOMEM. */
int tools_command_resolve(const char *program, const char *search_path, char **path_out)
    __attribute__((warn_unused_result));

#endif
