#!/usr/bin/env bash
# Issue 9 item 9 (the state directory) through the real interface (`peermcp serve`, `id`), each
# check able to fail on the code before the fix: a state directory that is a file, writable by
# others or its group, another user's, an identity key of another user, a symlinked
# queue.sqlite3 or cache/: refused with the reason; two serves on one directory: the second
# names the first's pid; announce.json removed at exit, a dead process's one replaced.
# Item 10 (tests/suites/hardening/store_breaks.py): the queue database's first page overwritten
# and the cache directory removed under a running node, a cache file corrupted: /readyz (HTTP
# and metrics listener), server_info, p2p_service_status, local and P2P status and the store
# tools' errors name the reason and the file; `peermcp queue check` judges the file.
# (Items 5 and 7 are tested by tests/taskq/test_table.c and tests/node/test_special_values.c.)
# Last line: "hardening: N passed, N failed".
set -u
root="${PEERMCP_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
bin="${PEERMCP_ASAN_BIN:-$root/build-asan/peermcp}"
[ -x "$bin" ] || bin="${PEERMCP_BIN:-$root/build/peermcp}"
tmp=$(mktemp -d)
chmod 755 "$tmp" # `nobody` must reach the directories it is given below
pass=0
fail=0
pids=()
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
unset IPFS_ACCELERATE_PY_TASK_P2P_TOKEN IPFS_DATASETS_PY_TASK_P2P_TOKEN PEERMCP_STATE_DIR PEERMCP_CONFIG

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  sleep 0.3
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  umount "$tmp/n10/mnt" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "PASS $1"; }
ko() { fail=$((fail + 1)); echo "FAIL $1${2:+: $2}"; }
check() { # name, then a command whose success means pass
  local name=$1
  shift
  if "$@"; then ok "$name"; else ko "$name"; fi
}
jget() { python3 -c "import json,sys; d=json.loads(sys.stdin.read() or 'null'); print($1)" 2>/dev/null; }
wait_file() { # path [tenths]: up to 60 s by default
  for _ in $(seq "${2:-600}"); do
    [ -s "$1" ] && return 0
    sleep 0.1
  done
  return 1
}
ma_of() { python3 -c "import json; print(json.load(open('$1/announce.json'))['multiaddr'])" 2>/dev/null; }
stop_wait() { # PID [SIGNAL]: bounded (60 s), 124 when it had to be killed
  local pid=$1 sig=${2:-TERM} i
  kill "-$sig" "$pid" 2>/dev/null
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 124
  fi
  wait "$pid" 2>/dev/null
}


# ================================================================ item 9: the state directory
mkdir -p "$tmp/n9"
touch "$tmp/n9/file"
out=$("$bin" serve --no-p2p --state-dir "$tmp/n9/file" 2>&1 </dev/null)
rc=$?
check "9: a regular file as --state-dir is a start-up error (exit 1)" [ "$rc" = 1 ]
check "9: …that says so" grep -q "the state directory $tmp/n9/file is not a directory" <<<"$out"
check "9: …and never gets to ready" bash -c '! grep -q "\"ready\"" <<<"$1"' _ "$out"

mkdir -m 0777 "$tmp/n9/open"
out=$("$bin" serve --no-p2p --state-dir "$tmp/n9/open" 2>&1 </dev/null)
rc=$?
check "9: a world-writable state directory is refused" [ "$rc" = 1 ]
check "9: …naming the mode and the fix" grep -q "writable by others (mode 0777).*chmod 700" <<<"$out"
check "9: …and nothing was created in it" [ -z "$(ls -A "$tmp/n9/open")" ]
mkdir -m 0770 "$tmp/n9/group"
out=$("$bin" id --state-dir "$tmp/n9/group" 2>&1)
check "9: peermcp id refuses a group-writable one too" grep -q "writable by its group" <<<"$out"

if [ "$(id -u)" = 0 ]; then
  mkdir -m 0700 "$tmp/n9/theirs"
  chown 65534:65534 "$tmp/n9/theirs"
  out=$("$bin" serve --no-p2p --state-dir "$tmp/n9/theirs" 2>&1 </dev/null)
  rc=$?
  check "9: another user's state directory is refused" [ "$rc" = 1 ]
  check "9: …naming its owner" grep -q "owned by uid 65534, not by this user" <<<"$out"
  mkdir -m 0500 "$tmp/n9/ro"
  chown 65534:65534 "$tmp/n9/ro"
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$bin" serve --no-p2p --state-dir "$tmp/n9/ro" 2>&1 </dev/null)
  rc=$?
  check "9: a state directory its user cannot write is a start-up error" [ "$rc" = 1 ]
  check "9: …that says not writable (not a bare Permission denied)" grep -q "is not writable by this user" <<<"$out"
  mkdir -p "$tmp/n9/key"
  "$bin" id --state-dir "$tmp/n9/key" >/dev/null 2>&1
  chown 65534 "$tmp/n9/key/identity.key"
  out=$("$bin" serve --no-stdio --state-dir "$tmp/n9/key" 2>&1 </dev/null)
  rc=$?
  check "9: an identity.key of another user is refused (serve)" [ "$rc" = 1 ]
  check "9: …with the reason" grep -q "identity key .*owned by uid 65534" <<<"$out"
  out=$("$bin" id --state-dir "$tmp/n9/key" 2>&1)
  check "9: …and by peermcp id" grep -q "identity key .*owned by uid 65534" <<<"$out"
else
  echo "SKIP 9: the ownership checks need root to make another user's files"
fi

# a symlink planted as queue.sqlite3 and as cache/: a start-up error naming it, nothing
# created or written through it
mkdir -p "$tmp/n9/links" "$tmp/n9/victim/cachedir"
ln -s "$tmp/n9/victim/q.sqlite3" "$tmp/n9/links/queue.sqlite3"
out=$("$bin" serve --no-p2p --state-dir "$tmp/n9/links" 2>&1 </dev/null)
rc=$?
check "9: a symlinked queue.sqlite3 is a start-up error (exit 1)" [ "$rc" = 1 ]
check "9: …naming the file and the reason" grep -q "task queue $tmp/n9/links/queue.sqlite3 is a symbolic link" <<<"$out"
check "9: …and nothing was created through the link" [ ! -e "$tmp/n9/victim/q.sqlite3" ]
rm "$tmp/n9/links/queue.sqlite3"
ln -s "$tmp/n9/victim/cachedir" "$tmp/n9/links/cache"
out=$("$bin" serve --no-p2p --state-dir "$tmp/n9/links" 2>&1 </dev/null)
rc=$?
check "9: a symlinked cache/ is a start-up error (exit 1)" [ "$rc" = 1 ]
check "9: …naming it and the reason" grep -q "cache directory $tmp/n9/links/cache is a symbolic link" <<<"$out"
check "9: …and nothing was written through it" [ -z "$(ls -A "$tmp/n9/victim/cachedir")" ]

# two serves on one state directory; announce.json at exit and after a crash
mkdir -p "$tmp/n9/two"
echo '{"p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"]}}' >"$tmp/n9/two.json"
"$bin" serve --no-stdio --config "$tmp/n9/two.json" --state-dir "$tmp/n9/two" 2>"$tmp/two1.err" </dev/null &
P1=$!
pids+=($P1)
wait_file "$tmp/n9/two/announce.json"
out=$(timeout 60 "$bin" serve --no-stdio --config "$tmp/n9/two.json" --state-dir "$tmp/n9/two" 2>&1 </dev/null)
rc=$?
check "9: a second serve on the same state directory refuses (exit 1)" [ "$rc" = 1 ]
check "9: …naming the holder's pid ($P1)" grep -q "in use by another peermcp serve (pid $P1)" <<<"$out"
stop_wait $P1
check "9: the first serve exits 0 on SIGTERM" [ $? = 0 ]
check "9: …and removed its announce.json" [ ! -e "$tmp/n9/two/announce.json" ]
"$bin" serve --no-stdio --config "$tmp/n9/two.json" --state-dir "$tmp/n9/two" 2>"$tmp/two2.err" </dev/null &
P2=$!
pids+=($P2)
wait_file "$tmp/n9/two/announce.json"
old_ma=$(ma_of "$tmp/n9/two")
stop_wait $P2 KILL
check "9: a SIGKILLed serve leaves its announce.json behind" [ -s "$tmp/n9/two/announce.json" ]
"$bin" serve --no-stdio --config "$tmp/n9/two.json" --state-dir "$tmp/n9/two" 2>"$tmp/two3.err" </dev/null &
P3=$!
pids+=($P3)
for _ in $(seq 600); do
  new_ma=$(ma_of "$tmp/n9/two")
  [ -n "$new_ma" ] && [ "$new_ma" != "$old_ma" ] && break
  sleep 0.1
done
check "9: …which the next serve replaces (the lock proves the old one dead)" [ -n "$new_ma" ] && [ "$new_ma" != "$old_ma" ]
stop_wait $P3
echo '{"peer_id":"12D3KooWdead","multiaddr":"/ip4/127.0.0.1/tcp/9/p2p/12D3KooWdead"}' >"$tmp/n9/two/announce.json"
"$bin" serve --no-p2p --state-dir "$tmp/n9/two" 2>"$tmp/two5.err" </dev/null # stdio: EOF, exits
check "9: a dead process's announce.json is removed by a serve without p2p" [ ! -e "$tmp/n9/two/announce.json" ]
check "9: …and says so" grep -q "stale announce file removed" "$tmp/two5.err"

# ================================================================ item 10: a store that breaks while serving
mkdir -p -m 700 "$tmp/n10/a" "$tmp/n10/c"
C_ID=$("$bin" id --state-dir "$tmp/n10/c" 2>/dev/null)
cat >"$tmp/n10/a.json" <<EOF
{"p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$C_ID"], "workers": 0},
 "mcp_tasks": {"runner": false}, "http": {"listen": ["127.0.0.1:0"]}}
EOF
while IFS= read -r line; do
  name=$(jget 'd["check"]' <<<"$line")
  if [ "$(jget 'd["ok"]' <<<"$line")" = True ]; then ok "$name"; else ko "$name" "$(jget 'd["detail"]' <<<"$line" | head -c 600)"; fi
done < <(timeout 600 python3 "$root/tests/suites/hardening/store_breaks.py" "$bin" "$tmp/n10" 2>"$tmp/n10/driver.err")
[ -s "$tmp/n10/driver.err" ] && { echo "driver stderr:"; tail -5 "$tmp/n10/driver.err"; }
[ -f "$tmp/n10/a.pid" ] && pids+=("$(cat "$tmp/n10/a.pid")")
if grep -q '"queue: storage broken"' "$tmp/n10/a.err"; then ok "10: the node logged the broken queue"; else ko "10: the node logged the broken queue"; fi

# ---- item 10, a full disk while serving (root only: a 2 MiB tmpfs holds the queue and the cache)
mnt="$tmp/n10/mnt"
mkdir -p "$mnt"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=2m,mode=0700 tmpfs "$mnt" 2>/dev/null; then
  mkdir -p -m 700 "$tmp/n10/f" "$mnt/q"
  cat >"$tmp/n10/a.json" <<EOF
{"p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "workers": 0}, "mcp_tasks": {"runner": false},
 "http": {"listen": ["127.0.0.1:0"]}, "queue": {"path": "$mnt/q/queue.sqlite3"}, "cache": {"dir": "$mnt/cache"}}
EOF
  rm -rf "$tmp/n10/a" && mkdir -m 700 "$tmp/n10/a"
  while IFS= read -r line; do
    name=$(jget 'd["check"]' <<<"$line")
    if [ "$(jget 'd["ok"]' <<<"$line")" = True ]; then ok "$name"; else ko "$name" "$(jget 'd["detail"]' <<<"$line" | head -c 600)"; fi
  done < <(timeout 600 python3 "$root/tests/suites/hardening/store_breaks.py" "$bin" "$tmp/n10" full "$mnt" 2>"$tmp/n10/driver2.err")
  [ -s "$tmp/n10/driver2.err" ] && { echo "driver stderr:"; tail -5 "$tmp/n10/driver2.err"; }
  [ -f "$tmp/n10/a.pid" ] && pids+=("$(cat "$tmp/n10/a.pid")")
  umount "$mnt" 2>/dev/null || umount -l "$mnt"
else
  echo "SKIP 10 (full disk): needs root and tmpfs mounts"
fi

echo "hardening: $pass passed, $fail failed"
[ "$fail" = 0 ]
