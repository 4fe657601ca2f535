/* dns_resolve.h — the unicast DNS TXT query behind /dnsaddr resolution (p2p/proto/dnsaddr.h),
 * with glibc's resolver (res_nquery, libresolv; no extra package): the system's
 * /etc/resolv.conf servers, 2 s per try, 2 tries.
 *
 * BLOCKING: call it from a worker thread, never from the loop thread. Thread-safe (each call
 * uses its own resolver state). */
#ifndef PEERMCP_P2P_HOST_DNS_RESOLVE_H
#define PEERMCP_P2P_HOST_DNS_RESOLVE_H

#include <stddef.h>
#include <stdint.h>

/* A dnsaddr_txt_fn: TXT query for qname; the raw response in answer[0..cap). Returns its
 * length, -ENOENT (no such name / no TXT data), -EMSGSIZE (response larger than cap),
 * -EIO (no answer). ud is unused. */
int dns_resolve_txt(void *ud, const char *qname, uint8_t *answer, size_t cap)
    __attribute__((warn_unused_result));

#endif
