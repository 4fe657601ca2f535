/* serve.c — `peermcp serve`: load the configuration, register the built-in tools, serve MCP on
 * stdio (and, later, the libp2p peer), and shut down in one ordered path:
 *   EOF on stdin or SIGINT/SIGTERM → stop reading → in-flight calls finish or hit their
 *   deadline → stdout flushed → stop P2P → close the dispatcher (joins workers) → close handles
 *   → exit 0. A second signal cancels the calls still running. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uv.h>

#include "cli/cli.h"
#include "cli/p2p.h"
#include "config/config.h"
#include "mcp/dispatch.h"
#include "mcp/registry.h"
#include "transport/stdio.h"
#include "store/cache.h"
#include "store/queue.h"
#include "tools/command.h"
#include "tools/mcp_tasks_queue.h"
#include "tools/meta.h"
#include "tools/store_tools.h"
#include "tools/system.h"
#include "service/service.h"
#include "tools/testing.h"
#include "util/log.h"
#include "util/workpool.h"

typedef struct serve_ctx {
  uv_loop_t loop;
  uv_signal_t sigint, sigterm;
  mcp_stdio *stdio;
  int signals;
  tq_queue *queue;   /* NULL when it could not be opened (tools answer queue_disabled) */
  ttlcache *cache;   /* NULL likewise */
  mcp_dispatcher *disp;
  uv_timer_t maint;  /* storage maintenance: queue recovery/pruning, cache sweep */
  bool maint_running;
  p2p_host *p2p;     /* the libp2p host; NULL when --no-p2p */
  mcp_tasks_queue *tasks; /* MCP Tasks over the queue; NULL without a queue */
} serve_ctx;

static void serve_usage(FILE *f) {
  fprintf(f,
          "usage: peermcp serve [OPTIONS]\n"
          "\n"
          "Serves MCP (JSON-RPC, newline-delimited) on stdin/stdout, both the 2026-07-28 and the\n"
          "2025-11-25…2024-11-05 revisions, plus the libp2p peer. Logs are JSON lines on stderr.\n"
          "Exits 0 when stdin closes (after in-flight calls finish) or on SIGINT/SIGTERM.\n"
          "\n"
          "options:\n"
          "%s"
          "  -h, --help           this text\n",
          config_args_help());
}

/* mkdir -p with mode 0700 for every directory it creates. */
static int mkdir_p(const char *path) {
  char *p = strdup(path);
  if (!p) return -ENOMEM;
  int rc = 0;
  for (char *s = p + 1;; s++) {
    if (*s == '/' || *s == 0) {
      char c = *s;
      *s = 0;
      if (mkdir(p, 0700) != 0 && errno != EEXIST) {
        rc = -errno;
        break;
      }
      *s = c;
      if (c == 0) break;
    }
  }
  free(p);
  return rc;
}

/* Opens the queue and the cache from the configuration. A failure is logged and leaves the
 * handle NULL: the server still starts, and the store tools say the store is disabled. */
static void open_store(serve_ctx *c, const config *cfg) {
  tq_options qo;
  tq_options_default(&qo);
  qo.path = cfg->queue.path;
  qo.max_payload_bytes = cfg->queue.max_payload_bytes;
  qo.lease_seconds = cfg->queue.lease_seconds;
  qo.max_attempts = (int)cfg->queue.max_attempts;
  qo.wait_max_seconds = cfg->queue.wait_max_seconds;
  qo.group_commit = cfg->queue.group_commit;
  qo.prune_after_seconds = cfg->queue.prune_after_seconds;
  int rc = tq_open(&qo, &c->queue);
  if (rc != 0) {
    c->queue = NULL;
    log_error("serve: cannot open the task queue; queue tools disabled", "{s:s, s:s}", "path", cfg->queue.path,
              "error", strerror(-rc));
  }
  ttlcache_options co;
  ttlcache_options_default(&co);
  co.dir = cfg->cache.dir;
  co.max_bytes = cfg->cache.max_bytes;
  co.max_entries = cfg->cache.max_entries;
  co.max_value_bytes = cfg->cache.max_value_bytes;
  co.default_ttl_seconds = cfg->cache.default_ttl_seconds;
  co.sweep_interval_seconds = cfg->cache.sweep_interval_seconds;
  rc = ttlcache_open(&co, &c->cache);
  if (rc != 0) {
    c->cache = NULL;
    log_error("serve: cannot open the cache; cache tools disabled", "{s:s, s:s}", "dir", cfg->cache.dir, "error",
              strerror(-rc));
  }
}

static void maint_work(void *arg) {
  serve_ctx *c = arg;
  if (c->queue) {
    int rc = tq_maintain(c->queue);
    if (rc != 0) log_warn("serve: queue maintenance failed", "{s:s}", "error", tq_strerror(rc));
  }
  if (c->cache) {
    size_t removed = 0;
    int rc = ttlcache_sweep(c->cache, &removed);
    if (rc != 0) log_warn("serve: cache sweep failed", "{s:s}", "error", strerror(-rc));
    else if (removed) log_debug("serve: cache sweep", "{s:I}", "removed", (json_int_t)removed);
  }
}
static void maint_done(void *arg) { ((serve_ctx *)arg)->maint_running = false; }

static void on_maint_timer(uv_timer_t *t) {
  serve_ctx *c = t->data;
  if (c->maint_running || !c->disp) return;
  if (workpool_submit(mcp_dispatcher_pool(c->disp), maint_work, maint_done, c) == 0) c->maint_running = true;
}

static void on_stdio_closed(void *ud) {
  serve_ctx *c = ud;
  log_info("serve: stdio closed; shutting down", NULL);
  uv_stop(&c->loop);
}

static void on_signal(uv_signal_t *h, int signum) {
  serve_ctx *c = h->data;
  c->signals++;
  log_info("serve: signal received; shutting down", "{s:i, s:i}", "signal", signum, "count", c->signals);
  if (c->stdio) mcp_stdio_stop(c->stdio); /* on_closed stops the loop once calls have drained */
  else uv_stop(&c->loop);
}

static void tasks_stopped(void *ud) { *(int *)ud = 1; }
/* MCP Tasks: stops the in-process runner (running tasks are released for the next start). */
static void serve_stop_tasks(serve_ctx *c) {
  if (!c->tasks) return;
  int done = 0;
  mcp_tasks_queue_stop(c->tasks, tasks_stopped, &done);
  while (!done) uv_run(&c->loop, UV_RUN_ONCE);
}

/* The P2P service (src/service/service.h): registered before the dispatcher, started after
 * the host, stopped (requests drained, workers' tasks released) before the host closes. */
static svc_service *g_svc;
static void svc_stopped(void *ud) { *(int *)ud = 1; }
static void serve_stop_service(uv_loop_t *loop) {
  if (!g_svc) return;
  int done = 0;
  svc_service_stop(g_svc, 5000, svc_stopped, &done);
  while (!done) uv_run(loop, UV_RUN_ONCE);
}

int cli_serve(int argc, char **argv) {
  config_args args;
  config_args_init(&args);
  char err[1024];
  if (config_args_parse(&args, &argc, argv, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp serve: %s\n", err);
    config_args_free(&args);
    return 2;
  }
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      serve_usage(stdout);
      config_args_free(&args);
      return 0;
    }
    fprintf(stderr, "peermcp serve: unknown argument '%s'\n\n", argv[i]);
    serve_usage(stderr);
    config_args_free(&args);
    return 2;
  }
  config cfg;
  if (config_load(&cfg, &args, err, sizeof err) != 0) {
    fprintf(stderr, "peermcp serve: %s\n", err);
    config_args_free(&args);
    return 1;
  }
  log_set_level(cfg.log_level);
  int exit_code = 1;
  mcp_registry *reg = NULL;
  mcp_dispatcher *disp = NULL;
  serve_ctx ctx;
  memset(&ctx, 0, sizeof ctx);
  bool loop_ok = false;

  int rc = mkdir_p(cfg.state_dir);
  if (rc != 0) {
    log_error("serve: cannot create the state directory", "{s:s, s:s}", "state_dir", cfg.state_dir, "error",
              strerror(-rc));
    goto out;
  }
  signal(SIGPIPE, SIG_IGN); /* a client that closed stdout must not kill us mid-write */
  if (uv_loop_init(&ctx.loop) != 0) goto out;
  loop_ok = true;

  reg = mcp_registry_new();
  if (!reg) goto out;
  if ((rc = tools_system_register(reg)) != 0) {
    log_error("serve: cannot register the system tools", "{s:i}", "errno", -rc);
    goto out;
  }
  if ((rc = tools_meta_register(reg)) != 0) {
    log_error("serve: cannot register the meta-tools", "{s:i}", "errno", -rc);
    goto out;
  }
  open_store(&ctx, &cfg);
  if ((rc = store_tools_register(reg, ctx.queue, ctx.cache)) != 0) {
    log_error("serve: cannot register the queue/cache tools", "{s:i}", "errno", -rc);
    goto out;
  }
  if ((rc = tools_testing_register(reg)) != 0) {
    log_error("serve: cannot register the testing tools", "{s:i}", "errno", -rc);
    goto out;
  }
  if ((rc = tools_command_register(reg, &cfg, err, sizeof err)) != 0) {
    fprintf(stderr, "peermcp serve: %s\n", err);
    log_error("serve: bad command tool", "{s:s}", "error", err);
    goto out;
  }
  if ((rc = svc_service_new(&cfg, ctx.queue, ctx.cache, reg, &g_svc)) != 0) {
    log_error("serve: cannot set up the p2p service", "{s:i}", "errno", -rc);
    goto out;
  }
  /* tools.disabled removes built-in tools too (command tools named there were never added) */
  for (size_t i = 0; i < cfg.tools.disabled_count; i++) {
    if (mcp_registry_remove(reg, cfg.tools.disabled[i]) == 0)
      log_info("serve: tool disabled by configuration", "{s:s}", "tool", cfg.tools.disabled[i]);
  }

  mcp_dispatcher_opts dopts = {.default_timeout_ms = cfg.tool_timeout_ms, .threads = cfg.workers_threads};
  if ((rc = mcp_dispatcher_new(&ctx.loop, reg, &dopts, &disp)) != 0) {
    log_error("serve: cannot start the dispatcher", "{s:i}", "errno", -rc);
    goto out;
  }

  ctx.disp = disp;
  uv_timer_init(&ctx.loop, &ctx.maint);
  ctx.maint.data = &ctx;
  {
    uint64_t every_ms = (uint64_t)(cfg.cache.sweep_interval_seconds ? cfg.cache.sweep_interval_seconds : 60) * 1000u;
    if (every_ms > 30000) every_ms = 30000; /* the queue wants recovery about every 30 s */
    uv_timer_start(&ctx.maint, on_maint_timer, 1000, every_ms);
  }
  uv_signal_init(&ctx.loop, &ctx.sigint);
  uv_signal_init(&ctx.loop, &ctx.sigterm);
  ctx.sigint.data = ctx.sigterm.data = &ctx;
  uv_signal_start(&ctx.sigint, on_signal, SIGINT);
  uv_signal_start(&ctx.sigterm, on_signal, SIGTERM);

  if (cfg.p2p.enabled) {
    /* HOOK(p2p): start the libp2p host here, before stdio is served */
    if ((rc = cli_p2p_start(&ctx.loop, &cfg, &ctx.p2p)) != 0) goto shutdown;
  }
  /* MCP Tasks (tools/mcp_tasks_queue.h): a task-augmented tools/call becomes a durable
   * "tool.call" queue task. Workers (p2p.workers, or `peermcp worker --peer` elsewhere) run
   * them; with p2p.workers = 0 an in-process runner does, so a task always completes on a
   * single node. */
  if (ctx.queue) {
    /* PEERMCP_MCP_TASKS_RUNNER=0|1 overrides the rule (e.g. to leave every task to remote
     * workers). */
    const char *rv = getenv("PEERMCP_MCP_TASKS_RUNNER");
    bool runner = rv && (strcmp(rv, "0") == 0 || strcmp(rv, "1") == 0) ? rv[0] == '1' : cfg.p2p.workers == 0;
    mcp_tasks_queue_opts to = {.loop = &ctx.loop, .dispatcher = disp, .queue = ctx.queue, .runner = runner};
    if ((rc = mcp_tasks_queue_new(&to, &ctx.tasks)) != 0) {
      log_error("serve: cannot set up MCP tasks; tasks disabled", "{s:i}", "errno", -rc);
      ctx.tasks = NULL;
    }
  }
  /* Peers get MCP Tasks over /mcp+p2p/1.0.0 too (owner = the peer's identity). */
  if (ctx.tasks) svc_service_set_mcp_tasks(g_svc, mcp_tasks_queue_backend(ctx.tasks));

  if ((rc = svc_service_start(g_svc, &ctx.loop, ctx.p2p, disp)) != 0) {
    log_error("serve: cannot start the p2p service", "{s:i}", "errno", -rc);
    goto shutdown;
  }

  /* The local stdio client is the operator: every scope. */
  static const mcp_auth k_local_auth = AUTH_CTX_LOCAL_INIT;
  if (cfg.stdio.enabled) {
    mcp_stdio_opts so = {
        .in_fd = 0,
        .out_fd = 1,
        .max_line_bytes = cfg.max_line_bytes,
        .session = {.dispatcher = disp, .auth = &k_local_auth, .page_size = cfg.page_size,
                    .tasks = ctx.tasks ? mcp_tasks_queue_backend(ctx.tasks) : NULL},
        .on_closed = on_stdio_closed,
        .ud = &ctx,
    };
    if ((rc = mcp_stdio_start(&ctx.loop, &so, &ctx.stdio)) != 0) {
      log_error("serve: cannot start stdio", "{s:i}", "errno", -rc);
      ctx.stdio = NULL;
      goto shutdown;
    }
  }
  log_info("serve: ready", "{s:s, s:I, s:b, s:b, s:s}", "version", PEERMCP_VERSION, "tools",
           (json_int_t)mcp_registry_count(reg), "stdio", cfg.stdio.enabled, "p2p", cfg.p2p.enabled, "state_dir",
           cfg.state_dir);

  uv_run(&ctx.loop, UV_RUN_DEFAULT);
  exit_code = 0;

shutdown:
  /* HOOK(p2p-stop) */
  serve_stop_service(&ctx.loop);
  serve_stop_tasks(&ctx);
  cli_p2p_stop(ctx.p2p); /* GoAway to peers; its handles close in the uv_run below */
  ctx.p2p = NULL;
  mcp_dispatcher_shutdown(disp);
  if (ctx.stdio) mcp_stdio_free(ctx.stdio);
  ctx.stdio = NULL;
  uv_close((uv_handle_t *)&ctx.sigint, NULL);
  uv_close((uv_handle_t *)&ctx.sigterm, NULL);
  uv_close((uv_handle_t *)&ctx.maint, NULL);
  mcp_dispatcher_free(disp); /* waits for running handlers (they see cancelled) and maintenance */
  disp = ctx.disp = NULL;
  uv_run(&ctx.loop, UV_RUN_DEFAULT); /* let every handle close */
out:
  if (disp) mcp_dispatcher_free(disp);
  if (loop_ok) {
    uv_run(&ctx.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&ctx.loop) != 0) log_warn("serve: loop closed with handles still open", NULL);
  }
  mcp_tasks_queue_free(ctx.tasks); /* after the dispatcher: its pool held our jobs */
  svc_service_free(g_svc); /* after the dispatcher: its tools' ud */
  g_svc = NULL;
  mcp_registry_free(reg); /* before the store: tool ud may refer to it */
  tq_close(ctx.queue);     /* after every handler has returned */
  ttlcache_close(ctx.cache);
  config_free(&cfg);
  config_args_free(&args);
  log_info("serve: exit", "{s:i}", "code", exit_code);
  return exit_code;
}
