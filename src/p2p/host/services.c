/* services.c — the one interface protocol services register through (p2p_host_add_service:
 * their protocol handlers, event hooks, start and stop), and the host's event bus
 * (p2p_host_subscribe: any number of listeners for connection, identify and address events).
 *
 * Delivery: services_emit() calls every live subscriber whose mask has the event, in
 * subscription order. Subscribers added during a delivery see the next event, not this one;
 * unsubscribing during a delivery takes effect at once (the slot is marked and compacted when
 * the outermost delivery returns), so a subscriber may remove itself or others, and free its
 * state, from inside its own callback. */
#include <errno.h>
#include <string.h>

#include "p2p/host/internal.h"
#include "util/log.h"

/* ---------------------------------------------------------------- events */

static void subs_compact(p2p_host *h) {
  CHECK(h->emitting == 0);
  size_t k = 0;
  for (size_t i = 0; i < h->n_subs; i++)
    if (!h->subs[i].removed) h->subs[k++] = h->subs[i];
  h->n_subs = k;
}

static host_sub *subs_find(p2p_host *h, p2p_event_fn fn, void *ud) {
  for (size_t i = 0; i < h->n_subs; i++)
    if (!h->subs[i].removed && h->subs[i].fn == fn && h->subs[i].ud == ud) return &h->subs[i];
  return NULL;
}

int p2p_host_subscribe(p2p_host *h, unsigned mask, p2p_event_fn fn, void *ud) {
  LOOP_THREAD_ONLY();
  if (!fn || !mask || (mask & ~(unsigned)P2P_EV_ALL)) return -EINVAL;
  host_sub *s = subs_find(h, fn, ud);
  if (s) {
    s->mask = mask;
    return 0;
  }
  if (h->n_subs == P2P_HOST_MAX_SUBSCRIBERS && !h->emitting) subs_compact(h);
  if (h->n_subs == P2P_HOST_MAX_SUBSCRIBERS) return -ENOMEM;
  h->subs[h->n_subs++] = (host_sub){.fn = fn, .ud = ud, .mask = mask};
  return 0;
}

int p2p_host_unsubscribe(p2p_host *h, p2p_event_fn fn, void *ud) {
  LOOP_THREAD_ONLY();
  host_sub *s = subs_find(h, fn, ud);
  if (!s) return -ENOENT;
  s->removed = true;
  if (!h->emitting) subs_compact(h);
  return 0;
}

void services_emit(p2p_host *h, const p2p_event *ev) {
  CHECK(ev->type && (ev->type & (ev->type - 1)) == 0); /* exactly one type */
  h->emitting++;
  size_t n = h->n_subs; /* later subscribers start with the next event */
  for (size_t i = 0; i < n; i++) {
    host_sub *s = &h->subs[i]; /* the array never moves while emitting */
    if (!s->removed && (s->mask & ev->type)) s->fn(h, ev, s->ud);
  }
  CHECK(h->emitting > 0);
  if (--h->emitting == 0) subs_compact(h);
}

/* ---------------------------------------------------------------- services */

int p2p_host_add_service(p2p_host *h, const p2p_service *svc, void *state) {
  LOOP_THREAD_ONLY();
  if (!svc || !svc->name || (svc->n_handlers && !svc->handlers) || (svc->events && !svc->on_event)) return -EINVAL;
  if (h->closing) return -ESHUTDOWN;
  if (h->n_services == P2P_HOST_MAX_SERVICES) return -ENOMEM;
  for (size_t i = 0; i < svc->n_handlers; i++) {
    if (!svc->handlers[i].protocol || !svc->handlers[i].fn) return -EINVAL;
    if (host_find_handler(h, svc->handlers[i].protocol)) return -EEXIST;
  }
  size_t added = 0; /* handlers registered so far */
  int rc = 0;
  while (rc == 0 && added < svc->n_handlers) {
    rc = p2p_host_handle(h, svc->handlers[added].protocol, svc->handlers[added].fn, state);
    if (rc == 0) added++;
  }
  if (rc == 0 && svc->events) rc = p2p_host_subscribe(h, svc->events, svc->on_event, state);
  if (rc == 0 && svc->start) {
    rc = svc->start(h, state);
    if (rc && svc->events) (void)p2p_host_unsubscribe(h, svc->on_event, state);
  }
  if (rc) {
    for (size_t i = 0; i < added; i++) (void)p2p_host_unhandle(h, svc->handlers[i].protocol);
    log_warn("p2p service not added", "{s:s, s:i}", "service", svc->name, "error", rc);
    return rc;
  }
  h->services[h->n_services++] = (host_service){.svc = svc, .state = state, .started = true};
  return 0;
}

void services_stop_all(p2p_host *h) {
  for (size_t i = h->n_services; i-- > 0;) {
    host_service *s = &h->services[i];
    if (!s->started) continue;
    s->started = false;
    if (s->svc->events) (void)p2p_host_unsubscribe(h, s->svc->on_event, s->state);
    if (s->svc->stop) s->svc->stop(h, s->state);
  }
  /* The handlers stay registered until the host is freed: while closing, new inbound streams
   * are refused anyway, and streams already handed out finish with their owners. */
}
