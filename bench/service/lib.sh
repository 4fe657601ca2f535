# bench/service/lib.sh — sourced by profile.sh and syncs.sh: the one task topology both measure.
# svc_topology BIN RUN: makes RUN/{b,w,d}, and RUN/b.json (node B: loopback listener, the driver's
# and the worker's PeerIds trusted, no in-process worker) and RUN/w.json (the worker: waiting
# claims, 20 s), with the identities BIN gives the state directories RUN/d/0 and RUN/w.
svc_topology() {
  local bin=$1 run=$2 d_id w_id
  mkdir -p "$run/b" "$run/w" "$run/d"
  d_id=$("$bin" id --state-dir "$run/d/0" 2>/dev/null)
  w_id=$("$bin" id --state-dir "$run/w" 2>/dev/null)
  cat >"$run/b.json" <<JSON
{"log_level": "warning", "p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$d_id", "$w_id"], "workers": 0}}
JSON
  cat >"$run/w.json" <<JSON
{"log_level": "warning", "p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "worker_claim_wait_seconds": 20}}
JSON
}
