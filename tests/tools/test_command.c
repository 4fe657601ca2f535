/* Tests for tools/command with real child processes: stdin carries the arguments, stdout
 * becomes the result (JSON or text), exit codes / signals / timeouts / cancels / output caps are
 * tool errors, the process group is killed and reaped, the environment is an allow-list, and no
 * descriptor leaks into the child. Runs through the real dispatcher. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "mcp/dispatch.h"
#include "support/mcpfix.h"
#include "support/tmpdir.h"
#include "support/wait.h"
#include "tools/command.h"
#include "util/clock.h"

typedef struct {
  ts_mcp m;
  config cfg;
  json_t *logs; /* ["level:message", …] from the call's log sink */
  char dir[TS_TMPDIR_MAX];
} fixture;

static const mcp_auth k_local = AUTH_CTX_LOCAL_INIT;

/* The command tools every test can use; %s is the fixture's temp dir. */
static const char k_config[] =
    "{\"tools\": {\"disabled\": [\"disabled_one\"], \"commands\": [\n"
    " {\"name\": \"cat\", \"argv\": [\"/bin/cat\"]},\n"
    " {\"name\": \"hello\", \"argv\": [\"/bin/sh\", \"-c\", \"printf 'hello\\\\n'\"]},\n"
    " {\"name\": \"hello_json\", \"argv\": [\"/bin/sh\", \"-c\", \"printf 'hello'\"], \"output\": \"json\"},\n"
    " {\"name\": \"cat_text\", \"argv\": [\"cat\"], \"output\": \"text\"},\n"
    " {\"name\": \"fail3\", \"argv\": [\"/bin/sh\", \"-c\", \"echo partial; echo oops >&2; exit 3\"]},\n"
    " {\"name\": \"segv\", \"argv\": [\"/bin/sh\", \"-c\", \"kill -SEGV $$\"]},\n"
    " {\"name\": \"slow\", \"timeout_ms\": 2000, \"argv\": [\"/bin/sh\", \"-c\", \"sleep 30 & echo $! > %s/bg.pid; wait\"]},\n"
    " {\"name\": \"slow_cancel\", \"argv\": [\"/bin/sh\", \"-c\", \"sleep 30 & echo $! > %s/bg2.pid; wait\"]},\n"
    " {\"name\": \"straggler\", \"argv\": [\"/bin/sh\", \"-c\", \"sleep 30 >/dev/null 2>&1 & echo $! > %s/bg3.pid; echo '{\\\"ok\\\":true}'\"]},\n"
    " {\"name\": \"term_ignorer\", \"timeout_ms\": 2000, \"argv\": [\"/bin/sh\", \"-c\", \"trap '' TERM; echo $$ > %s/ti.pid; while :; do sleep 0.05; done\"]},\n"
    " {\"name\": \"yes\", \"max_output_bytes\": 1000, \"argv\": [\"/usr/bin/yes\"]},\n"
    " {\"name\": \"big\", \"argv\": [\"/bin/sh\", \"-c\", \"head -c 300000 /dev/zero | tr '\\\\0' a\"]},\n"
    " {\"name\": \"envtest\", \"argv\": [\"/bin/sh\", \"-c\", \"printf '%%s|%%s|%%s' \\\"$FOO\\\" \\\"$HOME\\\" \\\"$SECRET\\\"\"],\n"
    "  \"env_allow\": [\"HOME\", \"NOT_SET_ANYWHERE\"], \"env\": {\"FOO\": \"bar\"}},\n"
    " {\"name\": \"pwd\", \"cwd\": \"%s\", \"argv\": [\"/bin/sh\", \"-c\", \"pwd\"], \"output\": \"text\"},\n"
    " {\"name\": \"fds\", \"argv\": [\"/bin/sh\", \"-c\", \"ls /proc/$$/fd\"], \"output\": \"text\"},\n"
    " {\"name\": \"no_stdin\", \"argv\": [\"/bin/sh\", \"-c\", \"exec 0<&-; echo done\"], \"output\": \"text\"},\n"
    " {\"name\": \"bad_utf8\", \"argv\": [\"/bin/sh\", \"-c\", \"printf 'a\\\\377b'\"], \"output\": \"text\"},\n"
    " {\"name\": \"chatty\", \"argv\": [\"/bin/sh\", \"-c\", \"i=0; while [ $i -lt 100 ]; do i=$((i+1)); echo line$i >&2; done; printf 'tail-no-newline' >&2; echo '{}'\"]},\n"
    " {\"name\": \"disabled_one\", \"argv\": [\"/nonexistent/never/checked\"]},\n"
    " {\"name\": \"typed\", \"argv\": [\"/bin/cat\"], \"input_schema\": {\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integer\"}}, \"required\": [\"n\"]}}\n"
    "]}}";

static int setup(void **state) {
  fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  ts_tmpdir_make(f->dir, "cmdtest");
  size_t n = sizeof k_config + 8 * strlen(f->dir);
  char *text = malloc(n);
  assert_non_null(text);
  snprintf(text, n, k_config, f->dir, f->dir, f->dir, f->dir, f->dir);
  char err[512];
  if (config_load_text(&f->cfg, text, strlen(text), "/tmp/cmdtest.json", NULL, err, sizeof err) != 0)
    fail_msg("config: %s", err);
  free(text);
  ts_mcp_open(&f->m);
  if (tools_command_register(f->m.reg, &f->cfg, err, sizeof err) != 0) fail_msg("register: %s", err);
  ts_mcp_start(&f->m, 2, 4);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  ts_mcp_close(&f->m);
  config_free(&f->cfg);
  json_decref(f->logs);
  assert_int_equal(ts_tmpdir_remove(f->dir), 0);
  free(f);
  return 0;
}

static void on_log(void *ud, const char *level, const char *msg) {
  fixture *f = ud;
  char b[1200];
  snprintf(b, sizeof b, "%s:%s", level, msg);
  if (!f->logs) f->logs = json_array();
  json_array_append_new(f->logs, json_string(b));
}

static mcp_call *start(fixture *f, const char *tool, json_t *args) {
  mcp_call_request rq = {.tool = tool, .args = args, .auth = &k_local, .sink = {.log = on_log, .ud = f}};
  mcp_call *c = NULL;
  assert_int_equal(mcp_dispatch_start(f->m.d, &rq, ts_mcp_on_done, &f->m, &c), 0);
  json_decref(args);
  return c;
}

static void wait_done(fixture *f, int want) {
  TS_LOOP_UNTIL(&f->m.loop, 60000, f->m.done >= want);
  assert_int_equal(f->m.done, want);
}

static json_t *run(fixture *f, const char *tool, json_t *args) {
  int before = f->m.done;
  start(f, tool, args ? args : json_object());
  wait_done(f, before + 1);
  return f->m.env;
}

static const char *sget(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* A process that is gone or a zombie no longer runs. */
static bool proc_running(pid_t pid) {
  char p[64], buf[512];
  snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
  FILE *fp = fopen(p, "r");
  if (!fp) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = 0;
  const char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

static pid_t read_pid(fixture *f, const char *name) {
  char p[TS_TMPDIR_MAX + 64];
  ts_path(p, sizeof p, f->dir, name);
  FILE *fp = fopen(p, "r");
  if (!fp) return -1;
  int pid = -1;
  if (fscanf(fp, "%d", &pid) != 1) pid = -1;
  fclose(fp);
  return pid;
}

static void assert_gone_soon(pid_t pid) {
  assert_true(pid > 0);
  TS_WAIT_UNTIL(TS_DEADLINE_MS, !proc_running(pid));
}

static void test_command_stdin_is_json_args_and_json_stdout_is_result(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "cat", json_pack("{s:i, s:s}", "x", 1, "s", "h\xc3\xa9"));
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  json_t *r = json_object_get(env, "result");
  assert_int_equal(json_integer_value(json_object_get(r, "x")), 1);
  assert_string_equal(sget(r, "s"), "h\xc3\xa9");
}

static void test_command_text_stdout_becomes_text(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "hello", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_string_equal(json_string_value(json_object_get(env, "result")), "hello\n");
  /* output "text" keeps JSON-looking stdout as text */
  env = run(f, "cat_text", json_pack("{s:i}", "a", 1));
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_string_equal(json_string_value(json_object_get(env, "result")), "{\"a\":1}\n");
}

static void test_command_output_json_requires_json(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "hello_json", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_TOOL_ERROR);
  assert_non_null(strstr(sget(env, "error"), "not valid JSON"));
}

static void test_command_nonzero_exit_is_error_with_code_and_stderr_tail(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "fail3", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_TOOL_ERROR);
  assert_string_equal(sget(env, "error"), "command exited with status 3");
  assert_int_equal(json_integer_value(json_object_get(env, "exit_code")), 3);
  assert_string_equal(sget(env, "stderr"), "oops\n");
  json_t *r = mcp_dispatch_call_result(env);
  assert_true(json_is_true(json_object_get(r, "isError")));
  json_decref(r);
}

static void test_command_signal_is_error(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "segv", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_TOOL_ERROR);
  assert_int_equal(json_integer_value(json_object_get(env, "signal")), SIGSEGV);
  assert_true(json_is_null(json_object_get(env, "exit_code")));
}

static void test_command_timeout_kills_the_process_group(void **state) {
  fixture *f = *state;
  int64_t t0 = clock_mono_ms();
  run(f, "slow", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_TIMEOUT);
  assert_true(clock_mono_ms() - t0 < 20000); /* the 2 s timeout, not the 30 s sleep */
  /* the background sleep in the same group is gone, not only the shell */
  assert_gone_soon(read_pid(f, "bg.pid"));
}

static void test_command_sigterm_ignored_gets_sigkill(void **state) {
  fixture *f = *state;
  run(f, "term_ignorer", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_TIMEOUT);
  assert_gone_soon(read_pid(f, "ti.pid"));
}

static void test_command_cancel_kills_the_process_group(void **state) {
  fixture *f = *state;
  int before = f->m.done;
  mcp_call *c = start(f, "slow_cancel", json_object());
  pid_t bg = -1;
  TS_LOOP_UNTIL(&f->m.loop, TS_DEADLINE_MS, (bg = read_pid(f, "bg2.pid")) > 0);
  assert_true(proc_running(bg));
  int64_t t0 = clock_mono_ms();
  mcp_dispatch_cancel(c);
  wait_done(f, before + 1);
  assert_int_equal(f->m.st, MCP_DISPATCH_CANCELLED);
  assert_true(clock_mono_ms() - t0 < 20000); /* not the 30 s sleep */
  assert_gone_soon(bg);
}

static void test_command_stragglers_are_killed_after_exit(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "straggler", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_true(json_is_true(json_object_get(json_object_get(env, "result"), "ok")));
  assert_gone_soon(read_pid(f, "bg3.pid"));
}

static void test_command_output_over_cap_is_error(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "yes", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_TOOL_ERROR);
  assert_non_null(strstr(sget(env, "error"), "exceeded max_output_bytes (1000)"));
}

static void test_command_large_output_under_cap(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "big", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_int_equal(json_string_length(json_object_get(env, "result")), 300000);
}

static void test_command_environment_is_an_allow_list(void **state) {
  fixture *f = *state;
  /* registration captured the environment; SECRET was never allowed */
  setenv("SECRET", "hunter2", 1);
  json_t *env = run(f, "envtest", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  char want[512];
  snprintf(want, sizeof want, "bar|%s|", getenv("HOME") ? getenv("HOME") : "");
  assert_string_equal(json_string_value(json_object_get(env, "result")), want);
  unsetenv("SECRET");
}

static void test_command_runs_in_cwd(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "pwd", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  char want[TS_TMPDIR_MAX + 2];
  snprintf(want, sizeof want, "%s\n", f->dir);
  assert_string_equal(json_string_value(json_object_get(env, "result")), want);
}

static void test_command_child_inherits_no_descriptors(void **state) {
  fixture *f = *state;
  int leak = open("/dev/null", O_RDONLY); /* deliberately without O_CLOEXEC */
  assert_true(leak > 2);
  json_t *env = run(f, "fds", NULL);
  close(leak);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  const char *out = json_string_value(json_object_get(env, "result"));
  assert_non_null(out);
  /* ls runs in a child of the shell, so this lists the shell's descriptors only (no pipeline:
   * the shell would hold its pipe ends while ls runs) */
  if (strcmp(out, "0\n1\n2\n") != 0) fail_msg("the command saw descriptors: %s", out);
}

static void test_command_child_closing_stdin_early_is_fine(void **state) {
  fixture *f = *state;
  /* 1 MB of arguments to a child that never reads them: no SIGPIPE, a normal result */
  char *big = malloc(1 << 20);
  assert_non_null(big);
  memset(big, 'x', (1 << 20) - 1);
  big[(1 << 20) - 1] = 0;
  json_t *env = run(f, "no_stdin", json_pack("{s:s}", "blob", big));
  free(big);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_string_equal(json_string_value(json_object_get(env, "result")), "done\n");
}

static void test_command_invalid_utf8_output_is_replaced(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "bad_utf8", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_string_equal(json_string_value(json_object_get(env, "result")), "a\xef\xbf\xbd" "b");
}

static void test_command_arguments_are_validated_first(void **state) {
  fixture *f = *state;
  json_t *env = run(f, "typed", json_pack("{s:s}", "n", "x"));
  assert_int_equal(f->m.st, MCP_DISPATCH_INVALID_ARGUMENTS);
  assert_non_null(strstr(sget(env, "error"), "$.n"));
}

static void test_command_stderr_lines_become_bounded_debug_logs(void **state) {
  fixture *f = *state;
  run(f, "chatty", NULL);
  assert_int_equal(f->m.st, MCP_DISPATCH_OK);
  assert_non_null(f->logs);
  assert_int_equal(json_array_size(f->logs), 64); /* capped */
  assert_string_equal(json_string_value(json_array_get(f->logs, 0)), "debug:line1");
  assert_string_equal(json_string_value(json_array_get(f->logs, 63)), "debug:line64");
}

static void test_command_registration_skips_disabled_and_sets_flags(void **state) {
  fixture *f = *state;
  assert_null(mcp_registry_find(f->m.reg, "disabled_one"));
  const mcp_tool *t = mcp_registry_find(f->m.reg, "slow");
  assert_non_null(t);
  assert_int_equal(mcp_tool_def_of(t)->timeout_ms, 2000);
  assert_string_equal(mcp_tool_def_of(t)->category, "commands");
  assert_false(mcp_tool_def_of(t)->flags & MCP_TOOL_INLINE);
}

/* --- registration failures (no fixture) --- */

static int register_text(const char *text, char *err, size_t errlen) {
  config cfg;
  char cerr[512];
  if (config_load_text(&cfg, text, strlen(text), "/etc/p/c.json", NULL, cerr, sizeof cerr) != 0)
    fail_msg("config: %s", cerr);
  mcp_registry *reg = mcp_registry_new();
  int rc = tools_command_register(reg, &cfg, err, errlen);
  mcp_registry_free(reg);
  config_free(&cfg);
  return rc;
}

static void test_command_registration_rejects_missing_program(void **state) {
  (void)state;
  char err[512];
  assert_int_equal(register_text("{\"tools\":{\"commands\":[\n{\"name\":\"x\",\"argv\":[\"/nonexistent/prog\"]}]}}", err,
                                 sizeof err),
                   -ENOENT);
  assert_non_null(strstr(err, "/etc/p/c.json:2: tools.commands[0] \"x\": program \"/nonexistent/prog\" does not exist"));
  assert_int_equal(register_text("{\"tools\":{\"commands\":[{\"name\":\"x\",\"argv\":[\"no-such-program-xyz\"]}]}}", err,
                                 sizeof err),
                   -ENOENT);
  assert_non_null(strstr(err, "was not found in PATH"));
}

static void test_command_registration_rejects_non_executable_and_bad_cwd(void **state) {
  (void)state;
  char err[512];
  assert_int_equal(register_text("{\"tools\":{\"commands\":[{\"name\":\"x\",\"argv\":[\"/etc/passwd\"]}]}}", err, sizeof err),
                   -EACCES);
  assert_non_null(strstr(err, "is not an executable file"));
  assert_int_equal(register_text("{\"tools\":{\"commands\":[{\"name\":\"x\",\"argv\":[\"/bin\"]}]}}", err, sizeof err),
                   -EACCES);
  assert_int_equal(
      register_text("{\"tools\":{\"commands\":[{\"name\":\"x\",\"argv\":[\"/bin/true\"],\"cwd\":\"/etc/passwd\"}]}}", err,
                    sizeof err),
      -ENOENT);
  assert_non_null(strstr(err, "cwd \"/etc/passwd\" is not an accessible directory"));
}

static void test_command_resolve_searches_path(void **state) {
  (void)state;
  char *p = NULL;
  assert_int_equal(tools_command_resolve("sh", NULL, &p), 0); /* the default search path */
  assert_non_null(strstr(p, "/sh"));
  assert_int_equal(access(p, X_OK), 0);
  free(p);
  assert_int_equal(tools_command_resolve("sh", "/nonexistent-dir:/bin", &p), 0); /* the path given */
  assert_string_equal(p, "/bin/sh");
  free(p);
  assert_int_equal(tools_command_resolve("sh", "/nonexistent-dir", &p), -ENOENT);
  assert_int_equal(tools_command_resolve("", NULL, &p), -ENOENT);
}

/* The search path is the PATH config_load captured, not the environment at registration. */
static void test_command_registration_uses_the_path_config_captured(void **state) {
  (void)state;
  const char *text = "{\"tools\":{\"commands\":[{\"name\":\"x\",\"argv\":[\"sh\"]}]}}";
  char *saved = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
  config cfg;
  char err[512];
  setenv("PATH", "/nonexistent-dir", 1);
  assert_int_equal(config_load_text(&cfg, text, strlen(text), "/etc/p/c.json", NULL, err, sizeof err), 0);
  setenv("PATH", "/bin:/usr/bin", 1); /* too late: not looked at */
  mcp_registry *reg = mcp_registry_new();
  assert_int_equal(tools_command_register(reg, &cfg, err, sizeof err), -ENOENT);
  assert_non_null(strstr(err, "was not found in PATH (/nonexistent-dir)"));
  mcp_registry_free(reg);
  config_free(&cfg);
  if (saved) setenv("PATH", saved, 1);
  else unsetenv("PATH");
  free(saved);
}

/* JSON Schema keywords are checked at registration, for every entry (disabled ones too), and
 * the message points at the input_schema key in the file, as config errors do. */
static void test_command_registration_rejects_bad_schema_with_position(void **state) {
  (void)state;
  char err[512];
  assert_int_equal(register_text("{\"tools\":{\"commands\":[\n  {\"name\":\"x\",\"argv\":[\"/bin/true\"],\n"
                                 "   \"input_schema\": {\"type\": \"object\", \"properties\": {\"n\": {\"type\": \"integr\"}}}}]}}",
                                 err, sizeof err),
                   -EINVAL);
  if (!strstr(err, "/etc/p/c.json:3:4: tools.commands[0].input_schema: ") || !strstr(err, "unknown type \"integr\""))
    fail_msg("err: %s", err);
  assert_int_equal(register_text("{\"tools\":{\"disabled\":[\"y\"],\"commands\":[{\"name\":\"x\",\"argv\":[\"/bin/true\"]},"
                                 "{\"name\":\"y\",\"argv\":[\"/nonexistent\"],\"input_schema\":{\"type\":\"object\","
                                 "\"required\":\"n\"}}]}}",
                                 err, sizeof err),
                   -EINVAL);
  assert_non_null(strstr(err, "tools.commands[1].input_schema: "));
}

int main(void) {
  signal(SIGPIPE, SIG_DFL); /* a stray SIGPIPE must kill the test, not be hidden */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_command_registration_uses_the_path_config_captured),
      cmocka_unit_test(test_command_registration_rejects_bad_schema_with_position),
      cmocka_unit_test_setup_teardown(test_command_stdin_is_json_args_and_json_stdout_is_result, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_text_stdout_becomes_text, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_output_json_requires_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_nonzero_exit_is_error_with_code_and_stderr_tail, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_signal_is_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_timeout_kills_the_process_group, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_sigterm_ignored_gets_sigkill, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_cancel_kills_the_process_group, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_stragglers_are_killed_after_exit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_output_over_cap_is_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_large_output_under_cap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_environment_is_an_allow_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_runs_in_cwd, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_child_inherits_no_descriptors, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_child_closing_stdin_early_is_fine, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_invalid_utf8_output_is_replaced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_arguments_are_validated_first, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_stderr_lines_become_bounded_debug_logs, setup, teardown),
      cmocka_unit_test_setup_teardown(test_command_registration_skips_disabled_and_sets_flags, setup, teardown),
      cmocka_unit_test(test_command_registration_rejects_missing_program),
      cmocka_unit_test(test_command_registration_rejects_non_executable_and_bad_cwd),
      cmocka_unit_test(test_command_resolve_searches_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
