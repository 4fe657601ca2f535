/* dns_resolve.c — TXT queries through glibc's resolver. See dns_resolve.h. */
#include "p2p/host/dns_resolve.h"

#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <string.h>

int dns_resolve_txt(void *ud, const char *qname, uint8_t *answer, size_t cap) {
  (void)ud;
  if (cap > 65535) cap = 65535;
  struct __res_state st;
  memset(&st, 0, sizeof st);
  if (res_ninit(&st) != 0) return -EIO;
  st.retrans = 2; /* seconds per try */
  st.retry = 2;
  int n = res_nquery(&st, qname, C_IN, T_TXT, answer, (int)cap);
  int herr = st.res_h_errno;
  res_nclose(&st);
  if (n < 0) return (herr == HOST_NOT_FOUND || herr == NO_DATA) ? -ENOENT : -EIO;
  if ((size_t)n > cap) return -EMSGSIZE; /* res_nquery reports the full size of a truncated answer */
  return n;
}
