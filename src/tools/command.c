/* command.c — command tools (see command.h and docs/command-tools.md).
 *
 * The child is started with posix_spawn (vfork-like, safe from a threaded process): pipes
 * dup2'd onto 0/1/2, a chdir, closefrom(3) and a fresh process group done by the spawn file
 * actions and attributes, signal mask and dispositions reset to defaults. The parent side is a
 * poll loop over the three pipes with a 25 ms tick, so cancellation (which has no descriptor)
 * is noticed promptly. The process group leader is only reaped after the final SIGKILL to the
 * group, so its id cannot be recycled while we still signal it. */
#include "tools/command.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mcp/schema.h"
#include "util/clock.h"
#include "util/log.h"

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define TICK_MS 25
#define STRAGGLER_GRACE_MS 200

typedef struct cmd_tool {
  char *name;
  char *path;    /* resolved executable */
  char **argv;   /* as declared (argv[0] as written), NULL-terminated */
  char *cwd;     /* NULL = inherit */
  char **envp;   /* NULL-terminated "K=V" */
  size_t max_output;
  config_output output;
} cmd_tool;

static void strv_free(char **v) {
  if (!v) return;
  for (char **p = v; *p; p++) free(*p);
  free(v);
}

static void cmd_tool_free(void *ud) {
  cmd_tool *t = ud;
  if (!t) return;
  free(t->name);
  free(t->path);
  strv_free(t->argv);
  free(t->cwd);
  strv_free(t->envp);
  free(t);
}

/* ---------- registration ---------- */

static int check_exec(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return -errno;
  if (!S_ISREG(st.st_mode)) return -EACCES;
  if (access(path, X_OK) != 0) return -EACCES;
  return 0;
}

int tools_command_resolve(const char *program, const char *search_path, char **path_out) {
  *path_out = NULL;
  if (!program || !*program) return -ENOENT;
  if (strchr(program, '/')) {
    int rc = check_exec(program);
    if (rc != 0) return rc;
    return (*path_out = strdup(program)) ? 0 : -ENOMEM;
  }
  const char *path = search_path && *search_path ? search_path : DEFAULT_PATH;
  int best = -ENOENT;
  const char *p = path;
  while (*p) {
    const char *e = strchr(p, ':');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char cand[4096];
    if (n == 0) snprintf(cand, sizeof cand, "./%s", program);
    else snprintf(cand, sizeof cand, "%.*s/%s", (int)n, p, program);
    int rc = check_exec(cand);
    if (rc == 0) return (*path_out = strdup(cand)) ? 0 : -ENOMEM;
    if (rc == -EACCES) best = -EACCES; /* found but not executable: the more useful error */
    if (!e) break;
    p = e + 1;
  }
  return best;
}

static char **strv_dup(char *const *v, size_t n) {
  char **r = calloc(n + 1, sizeof *r);
  if (!r) return NULL;
  for (size_t i = 0; i < n; i++) {
    if (!(r[i] = strdup(v[i]))) {
      strv_free(r);
      return NULL;
    }
  }
  return r;
}

/* The child's environment: the allowed variables of ours (captured by config_load at start-up,
 * minus those fixed by env), then the fixed ones, then PATH=DEFAULT_PATH if neither gave a PATH. */
static char **build_envp(const config_command *c) {
  size_t cap = c->env_pass_count + c->env_count + 2, n = 0;
  char **envp = calloc(cap, sizeof *envp);
  if (!envp) return NULL;
  bool has_path = false;
  for (size_t i = 0; i < c->env_pass_count; i++) {
    if (!(envp[n++] = strdup(c->env_pass[i]))) goto oom;
    if (strncmp(c->env_pass[i], "PATH=", 5) == 0) has_path = true;
  }
  for (size_t j = 0; j < c->env_count; j++) {
    if (!(envp[n++] = strdup(c->env[j]))) goto oom;
    if (strncmp(c->env[j], "PATH=", 5) == 0) has_path = true;
  }
  if (!has_path && !(envp[n++] = strdup("PATH=" DEFAULT_PATH))) goto oom;
  return envp;
oom:
  strv_free(envp);
  return NULL;
}

static mcp_tool_status cmd_run(mcp_call *call, json_t *args, json_t **result, void *ud);

__attribute__((format(printf, 6, 7))) static int reg_err(const config *cfg, const config_command *c, size_t idx,
                                                          char *err, size_t errlen, const char *fmt, ...) {
  if (!err || !errlen) return 0;
  int n;
  if (cfg->config_path && c->src_line > 0)
    n = snprintf(err, errlen, "%s:%d: tools.commands[%zu] \"%s\": ", cfg->config_path, c->src_line, idx, c->name);
  else if (cfg->config_path)
    n = snprintf(err, errlen, "%s: tools.commands[%zu] \"%s\": ", cfg->config_path, idx, c->name);
  else
    n = snprintf(err, errlen, "tools.commands[%zu] \"%s\": ", idx, c->name);
  if (n < 0 || (size_t)n >= errlen) return 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
  va_end(ap);
  return 0;
}

/* A bad input_schema, reported as config_load reports a key: "file:line:col: path: why". */
static int schema_err(const config *cfg, const config_command *c, size_t idx, const char *why, char *err,
                      size_t errlen) {
  if (!err || !errlen) return -EINVAL;
  if (cfg->config_path && c->schema_line > 0)
    snprintf(err, errlen, "%s:%d:%d: tools.commands[%zu].input_schema: %s", cfg->config_path, c->schema_line,
             c->schema_col, idx, why);
  else if (cfg->config_path)
    snprintf(err, errlen, "%s: tools.commands[%zu].input_schema: %s", cfg->config_path, idx, why);
  else
    snprintf(err, errlen, "tools.commands[%zu].input_schema: %s", idx, why);
  return -EINVAL;
}

int tools_command_register(mcp_registry *reg, const config *cfg, char *err, size_t errlen) {
  if (err && errlen) err[0] = 0;
  /* Every declaration's schema first, disabled ones too: a typo is refused wherever it is. */
  for (size_t i = 0; i < cfg->tools.command_count; i++) {
    const config_command *c = &cfg->tools.commands[i];
    char why[512];
    if (mcp_schema_check(c->input_schema, why, sizeof why) != 0 ||
        mcp_schema_check_keywords(c->input_schema, why, sizeof why) != 0)
      return schema_err(cfg, c, i, why, err, errlen);
  }
  for (size_t i = 0; i < cfg->tools.command_count; i++) {
    const config_command *c = &cfg->tools.commands[i];
    if (config_tool_disabled(cfg, c->name)) continue;
    char *path = NULL;
    int rc = tools_command_resolve(c->argv[0], cfg->env_path, &path);
    if (rc == -ENOMEM) return rc;
    if (rc != 0) {
      if (strchr(c->argv[0], '/'))
        reg_err(cfg, c, i, err, errlen, "program \"%s\" %s", c->argv[0],
                rc == -EACCES ? "is not an executable file" : "does not exist");
      else
        reg_err(cfg, c, i, err, errlen, "program \"%s\" %s in PATH (%s)", c->argv[0],
                rc == -EACCES ? "is not executable" : "was not found",
                cfg->env_path ? cfg->env_path : DEFAULT_PATH);
      return rc;
    }
    if (c->cwd) {
      struct stat st;
      if (stat(c->cwd, &st) != 0 || !S_ISDIR(st.st_mode) || access(c->cwd, X_OK) != 0) {
        free(path);
        reg_err(cfg, c, i, err, errlen, "cwd \"%s\" is not an accessible directory", c->cwd);
        return -ENOENT;
      }
    }
    cmd_tool *t = calloc(1, sizeof *t);
    char *schema = json_dumps(c->input_schema, JSON_COMPACT);
    if (!t || !schema) {
      free(t);
      free(schema);
      free(path);
      return -ENOMEM;
    }
    t->path = path;
    t->name = strdup(c->name);
    t->argv = strv_dup(c->argv, c->argc);
    t->cwd = c->cwd ? strdup(c->cwd) : NULL;
    t->envp = build_envp(c);
    t->max_output = c->max_output_bytes ? c->max_output_bytes : (1u << 20);
    t->output = c->output;
    if (!t->name || !t->argv || (c->cwd && !t->cwd) || !t->envp) {
      cmd_tool_free(t);
      free(schema);
      return -ENOMEM;
    }
    /* the scopes a caller needs: the declared ones (interned here, so JWT scope claims and
     * stdio.scopes can name them), else tool.call */
    auth_scopes need = AUTH_SCOPES(AUTH_TOOL_CALL);
    if (c->scope_count) {
      need = AUTH_SCOPES(0);
      for (size_t k = 0; k < c->scope_count; k++) {
        unsigned id;
        if ((rc = auth_scope_intern(c->scopes[k], &id)) != 0) {
          cmd_tool_free(t);
          free(schema);
          reg_err(cfg, c, i, err, errlen, "scope \"%s\": %s", c->scopes[k],
                  rc == -ENOSPC ? "too many distinct scope names (256)" : "not a valid scope name");
          return rc;
        }
        auth_scopes_add(&need, id);
      }
    }
    mcp_tool_def def = {
        .name = c->name,
        .category = c->category,
        .title = c->title,
        .description = c->description,
        .input_schema = schema,
        .annotations = "{\"openWorldHint\":true}",
        .scopes = need,
        /* the handler supervises a child process for up to timeout_ms: a long call */
        .flags = (c->remote ? MCP_TOOL_REMOTE : 0) | MCP_TOOL_LONG,
        .timeout_ms = c->timeout_ms,
        .fn = cmd_run,
        .ud = t,
        .ud_free = cmd_tool_free,
    };
    rc = mcp_registry_add(reg, &def);
    free(schema);
    if (rc != 0) {
      cmd_tool_free(t);
      reg_err(cfg, c, i, err, errlen, "%s",
              rc == -EEXIST ? "a tool with this name already exists" : "the registry refused the declaration");
      return rc;
    }
    log_write(LOG_DEBUG, "command tool registered", "{s:s, s:s, s:s}", "tool", c->name, "category", c->category,
              "program", t->path);
  }
  return 0;
}

/* ---------- running ---------- */

/* Bytes → JSON string, invalid UTF-8 replaced by U+FFFD. */
static json_t *utf8_string(const char *s, size_t n) {
  json_t *v = json_stringn(s, n);
  if (v) return v;
  char *o = malloc(n * 3 + 1);
  if (!o) return NULL;
  size_t w = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
    if (ok && len > 1) { /* reject overlongs and surrogates, which jansson refuses */
      unsigned cp = len == 2 ? (c & 0x1Fu) : len == 3 ? (c & 0x0Fu) : (c & 0x07u);
      for (size_t k = 1; k < len; k++) cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3Fu);
      if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
          (cp >= 0xD800 && cp <= 0xDFFF))
        ok = false;
    }
    if (ok) {
      memcpy(o + w, s + i, len);
      w += len;
      i += len;
    } else {
      memcpy(o + w, "\xEF\xBF\xBD", 3);
      w += 3;
      i++;
    }
  }
  v = json_stringn(o, w);
  free(o);
  return v;
}

typedef struct {
  char *data;
  size_t len, cap, max;
  bool over;
} capbuf;

/* Appends up to the ceiling; past it sets `over` and drops the rest. */
static int capbuf_add(capbuf *b, const char *p, size_t n) {
  if (b->len + n > b->max) {
    n = b->max - b->len;
    b->over = true;
  }
  if (n == 0) return 0;
  if (b->len + n > b->cap) {
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->len + n) nc *= 2;
    if (nc > b->max) nc = b->max;
    char *nd = realloc(b->data, nc);
    if (!nd) return -ENOMEM;
    b->data = nd;
    b->cap = nc;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

/* Keeps the last TOOLS_COMMAND_STDERR_TAIL bytes. */
typedef struct {
  char data[2 * TOOLS_COMMAND_STDERR_TAIL];
  size_t len;
  bool truncated;
} tailbuf;

static void tail_add(tailbuf *t, const char *p, size_t n) {
  while (n > 0) {
    if (t->len == sizeof t->data) {
      memmove(t->data, t->data + TOOLS_COMMAND_STDERR_TAIL, TOOLS_COMMAND_STDERR_TAIL);
      t->len = TOOLS_COMMAND_STDERR_TAIL;
      t->truncated = true;
    }
    size_t k = sizeof t->data - t->len;
    if (k > n) k = n;
    memcpy(t->data + t->len, p, k);
    t->len += k;
    p += k;
    n -= k;
  }
}

static json_t *tail_json(const tailbuf *t) {
  size_t n = t->len > TOOLS_COMMAND_STDERR_TAIL ? TOOLS_COMMAND_STDERR_TAIL : t->len;
  const char *s = t->data + t->len - n;
  /* do not start in the middle of a UTF-8 sequence */
  while (n > 0 && ((unsigned char)*s & 0xC0) == 0x80) {
    s++;
    n--;
  }
  return utf8_string(s, n);
}

/* stderr lines forwarded to the client as log notifications (level "debug"), bounded so a
 * chatty program cannot flood the transport. */
#define LOG_LINES_MAX 64
#define LOG_LINE_MAX 1024

typedef struct {
  char line[LOG_LINE_MAX + 1];
  size_t len;
  bool overlong;
  int sent;
} linefwd;

static void linefwd_emit(mcp_call *call, linefwd *lf) {
  if (lf->sent < LOG_LINES_MAX && (lf->len > 0 || lf->overlong)) {
    lf->line[lf->len] = 0;
    json_t *v = utf8_string(lf->line, lf->len); /* valid UTF-8 for the JSON message */
    if (v) mcp_call_log(call, "debug", json_string_value(v));
    json_decref(v);
    lf->sent++;
  }
  lf->len = 0;
  lf->overlong = false;
}

static void linefwd_add(mcp_call *call, linefwd *lf, const char *p, size_t n) {
  for (size_t i = 0; i < n && lf->sent < LOG_LINES_MAX; i++) {
    if (p[i] == '\n') linefwd_emit(call, lf);
    else if (lf->len < LOG_LINE_MAX) lf->line[lf->len++] = p[i];
    else lf->overlong = true;
  }
}

/* A descriptor at or above 3, so dup2 onto 0/1/2 in the child never is a no-op. */
static int fd_above_stdio(int fd) {
  if (fd > 2) return fd;
  int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int e = errno;
  close(fd);
  errno = e;
  return nfd;
}

static int make_pipe(int p[2]) {
  if (pipe2(p, O_CLOEXEC) != 0) return -errno;
  p[0] = fd_above_stdio(p[0]);
  p[1] = fd_above_stdio(p[1]);
  if (p[0] < 0 || p[1] < 0) {
    int e = errno;
    if (p[0] >= 0) close(p[0]);
    if (p[1] >= 0) close(p[1]);
    return -e;
  }
  return 0;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static int spawn_child(const cmd_tool *t, int in_r, int out_w, int err_w, pid_t *pid) {
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  int rc = posix_spawn_file_actions_init(&fa);
  if (rc != 0) return -rc;
  rc = posix_spawnattr_init(&at);
  if (rc != 0) {
    posix_spawn_file_actions_destroy(&fa);
    return -rc;
  }
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, in_r, 0);
  if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, out_w, 1);
  if (!rc) rc = posix_spawn_file_actions_adddup2(&fa, err_w, 2);
  if (!rc && t->cwd) rc = posix_spawn_file_actions_addchdir_np(&fa, t->cwd);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  if (!rc) rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
  if (!rc) rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  if (!rc) rc = posix_spawnattr_setpgroup(&at, 0);
  if (!rc) rc = posix_spawnattr_setsigmask(&at, &none);
  if (!rc) rc = posix_spawnattr_setsigdefault(&at, &all);
  if (!rc) rc = posix_spawn(pid, t->path, &fa, &at, t->argv, t->envp);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  return -rc;
}

/* Writes without letting SIGPIPE reach the process: blocked for this thread, and a pending one
 * raised by our write is consumed. */
static ssize_t write_nosigpipe(int fd, const void *p, size_t n) {
  sigset_t set, old;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, &old);
  ssize_t w = write(fd, p, n);
  int e = errno;
  if (w < 0 && e == EPIPE) {
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {
    }
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return w;
}

/* True once the child has exited (not reaped: WNOWAIT keeps its pid and process group). */
static bool child_exited(pid_t pid) {
  siginfo_t si;
  memset(&si, 0, sizeof si);
  if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) return errno == ECHILD;
  return si.si_pid == pid;
}

/* SIGTERM to the group, up to the grace period for the leader to exit, then SIGKILL to the
 * group (stragglers included), then reap the leader. Returns its wait status. */
static int kill_and_reap(pid_t pid, bool gentle) {
  if (gentle) {
    kill(-pid, SIGTERM);
    int64_t until = clock_mono_ms() + TOOLS_COMMAND_KILL_GRACE_MS;
    while (!child_exited(pid) && clock_mono_ms() < until) {
      struct timespec ts = {0, 5 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  kill(-pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

static const char *signame(int sig) {
  switch (sig) {
  case SIGTERM: return "SIGTERM";
  case SIGKILL: return "SIGKILL";
  case SIGSEGV: return "SIGSEGV";
  case SIGABRT: return "SIGABRT";
  case SIGINT: return "SIGINT";
  case SIGHUP: return "SIGHUP";
  case SIGPIPE: return "SIGPIPE";
  case SIGBUS: return "SIGBUS";
  case SIGFPE: return "SIGFPE";
  case SIGILL: return "SIGILL";
  default: return "signal";
  }
}

typedef enum { END_EXITED, END_TIMEOUT, END_CANCELLED, END_OVERFLOW, END_IOERROR } end_reason;

static mcp_tool_status cmd_run(mcp_call *call, json_t *args, json_t **result, void *ud) {
  cmd_tool *t = ud;
  int64_t t0 = clock_mono_ms();
  char *input = json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY);
  if (!input) {
    *result = json_string("out of memory");
    return MCP_TOOL_ERROR;
  }
  size_t in_len = strlen(input), in_off = 0;
  input[in_len] = 0;
  char *line = realloc(input, in_len + 2);
  if (!line) {
    free(input);
    *result = json_string("out of memory");
    return MCP_TOOL_ERROR;
  }
  input = line;
  input[in_len++] = '\n';

  int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
  int rc = make_pipe(pin);
  if (!rc) rc = make_pipe(pout);
  if (!rc) rc = make_pipe(perr);
  pid_t pid = -1;
  if (!rc) rc = spawn_child(t, pin[0], pout[1], perr[1], &pid);
  close_fd(&pin[0]);
  close_fd(&pout[1]);
  close_fd(&perr[1]);
  if (rc != 0) {
    close_fd(&pin[1]);
    close_fd(&pout[0]);
    close_fd(&perr[0]);
    free(input);
    *result = json_pack("{s:s, s:s}", "error", "could not start the command", "reason", strerror(-rc));
    log_write(LOG_WARNING, "command tool: spawn failed", "{s:s, s:s}", "tool", t->name, "error", strerror(-rc));
    return MCP_TOOL_ERROR;
  }
  fcntl(pin[1], F_SETFL, O_NONBLOCK);
  fcntl(pout[0], F_SETFL, O_NONBLOCK);
  fcntl(perr[0], F_SETFL, O_NONBLOCK);

  capbuf out = {.max = t->max_output};
  tailbuf *errt = calloc(1, sizeof *errt);
  linefwd *lfwd = calloc(1, sizeof *lfwd); /* optional: no forwarding without memory */
  end_reason why = END_EXITED;
  int64_t deadline = mcp_call_deadline_ms(call);
  int64_t exited_at = -1;
  char chunk[16384];
  if (!errt) why = END_IOERROR;

  while (why == END_EXITED && (pout[0] >= 0 || perr[0] >= 0 || exited_at < 0)) {
    int64_t now = clock_mono_ms();
    if (mcp_call_cancelled(call)) {
      why = now >= deadline ? END_TIMEOUT : END_CANCELLED;
      break;
    }
    if (now >= deadline) {
      why = END_TIMEOUT;
      break;
    }
    if (exited_at < 0 && child_exited(pid)) exited_at = now;
    if (exited_at >= 0 && now - exited_at > STRAGGLER_GRACE_MS) break; /* someone else holds the pipes */
    struct pollfd pf[3];
    int nf = 0, i_in = -1, i_out = -1, i_err = -1;
    if (pin[1] >= 0) {
      i_in = nf;
      pf[nf++] = (struct pollfd){.fd = pin[1], .events = POLLOUT};
    }
    if (pout[0] >= 0) {
      i_out = nf;
      pf[nf++] = (struct pollfd){.fd = pout[0], .events = POLLIN};
    }
    if (perr[0] >= 0) {
      i_err = nf;
      pf[nf++] = (struct pollfd){.fd = perr[0], .events = POLLIN};
    }
    int64_t wait = deadline - now;
    if (wait > TICK_MS) wait = TICK_MS;
    if (pout[0] < 0 && perr[0] < 0 && exited_at < 0 && wait > 5) wait = 5; /* only waiting for exit */
    int n = poll(pf, (nfds_t)nf, (int)wait);
    if (n < 0) {
      if (errno == EINTR) continue;
      why = END_IOERROR;
      break;
    }
    if (i_in >= 0 && pf[i_in].revents) {
      if (pf[i_in].revents & (POLLERR | POLLHUP)) {
        close_fd(&pin[1]); /* the child closed stdin: it does not want the rest */
      } else {
        ssize_t w = write_nosigpipe(pin[1], input + in_off, in_len - in_off);
        if (w > 0) in_off += (size_t)w;
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_len) close_fd(&pin[1]);
      }
    }
    if (i_out >= 0 && pf[i_out].revents) {
      ssize_t r = read(pout[0], chunk, sizeof chunk);
      if (r > 0) {
        if (capbuf_add(&out, chunk, (size_t)r) != 0) why = END_IOERROR;
        else if (out.over) why = END_OVERFLOW;
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_fd(&pout[0]);
      }
    }
    if (i_err >= 0 && pf[i_err].revents) {
      ssize_t r = read(perr[0], chunk, sizeof chunk);
      if (r > 0) {
        tail_add(errt, chunk, (size_t)r);
        if (lfwd) linefwd_add(call, lfwd, chunk, (size_t)r);
      } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
        close_fd(&perr[0]);
        if (lfwd) linefwd_emit(call, lfwd); /* an unterminated last line */
      }
    }
  }
  bool abnormal = why != END_EXITED;
  int status = kill_and_reap(pid, abnormal);
  close_fd(&pin[1]);
  close_fd(&pout[0]);
  close_fd(&perr[0]);
  free(input);
  int64_t ms = clock_mono_ms() - t0;

  json_t *stderr_tail = errt ? tail_json(errt) : json_string("");
  free(errt);
  free(lfwd);
  mcp_tool_status st = MCP_TOOL_ERROR;
  if (why == END_TIMEOUT) {
    *result = json_pack("{s:s, s:b, s:I, s:o}", "error", "command timed out and was killed", "timed_out", 1,
                        "duration_ms", (json_int_t)ms, "stderr", stderr_tail);
  } else if (why == END_CANCELLED) {
    *result = json_pack("{s:s, s:b, s:o}", "error", "command cancelled and killed", "cancelled", 1, "stderr",
                        stderr_tail);
  } else if (why == END_OVERFLOW) {
    char msg[128];
    snprintf(msg, sizeof msg, "command output exceeded max_output_bytes (%zu) and was killed", t->max_output);
    *result = json_pack("{s:s, s:I, s:o}", "error", msg, "max_output_bytes", (json_int_t)t->max_output, "stderr",
                        stderr_tail);
  } else if (why == END_IOERROR) {
    *result = json_pack("{s:s, s:o}", "error", "I/O error while running the command", "stderr", stderr_tail);
  } else if (WIFSIGNALED(status)) {
    char msg[96];
    snprintf(msg, sizeof msg, "command killed by signal %d (%s)", WTERMSIG(status), signame(WTERMSIG(status)));
    *result = json_pack("{s:s, s:n, s:i, s:o}", "error", msg, "exit_code", "signal", WTERMSIG(status), "stderr",
                        stderr_tail);
  } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
    char msg[64];
    snprintf(msg, sizeof msg, "command exited with status %d", WEXITSTATUS(status));
    *result = json_pack("{s:s, s:i, s:o}", "error", msg, "exit_code", WEXITSTATUS(status), "stderr", stderr_tail);
  } else {
    json_t *value = NULL;
    const char *bad = NULL;
    char msg[256];
    if (t->output == CONFIG_OUTPUT_JSON && out.len == 0) {
      bad = "command printed nothing (its output is declared \"json\")";
    } else if (t->output != CONFIG_OUTPUT_TEXT && out.len > 0) {
      json_error_t jerr;
      value = json_loadb(out.data, out.len, JSON_DECODE_ANY, &jerr);
      if (!value && t->output == CONFIG_OUTPUT_JSON) {
        snprintf(msg, sizeof msg, "command output is not valid JSON: %s (line %d)", jerr.text, jerr.line);
        bad = msg;
      }
    }
    if (bad) {
      *result = json_pack("{s:s, s:i, s:o}", "error", bad, "exit_code", 0, "stderr", stderr_tail);
    } else {
      json_decref(stderr_tail);
      *result = value ? value : utf8_string(out.data ? out.data : "", out.len);
      st = *result ? MCP_TOOL_OK : MCP_TOOL_ERROR;
    }
  }
  free(out.data);
  if (!*result) {
    *result = json_string("out of memory");
    st = MCP_TOOL_ERROR;
  }
  log_write(LOG_DEBUG, "command tool finished", "{s:s, s:i, s:i, s:I, s:b}", "tool", t->name, "pid", (int)pid,
            "status", status, "duration_ms", (json_int_t)ms, "ok", st == MCP_TOOL_OK);
  return st;
}
