#!/usr/bin/env bash
# What a new operator meets (issue 10), through the real interface — exit codes, stdout,
# stderr, the node's log, an MCP client on stdio:
#   the CLI: per-command help, bad numbers refused with the reason, flag sets that serve nothing,
#     serve-only flags refused elsewhere, configuration messages (value shown, end-of-file
#     column, printed once), unsupported listen addresses, a typo in a command tool's schema,
#     `task get|wait|cancel` of an unknown id, a state directory that is a file or not
#     writable, the default configuration file read by every command, `id --json|--multiaddr`;
#   dialing: an invalid multiaddr, a closed port, a port that never answers (timeout), a wrong
#     PeerId (both ids shown; status and ping alike), a PeerId with
#     no known address, a protocol the peer does not serve, a token to an address without /p2p/;
#     ping's summary; perf's defaults and per-phase rates;
#   work: queued tasks run on a default node; p2p.workers 0 turns that off; `worker --once`
#     refused or unreachable exits 1 and says why; a worker that lacks a tool does not claim its
#     type and releases a tool.call naming it; per-task info lines (claimed, completed, failed,
#     released); the node's log volume;
#   MCP: --no-p2p lists no p2p_* network tools; tools_dispatch errors carry "status":"error";
#     tools_get_schema without a category; tools_list_tools cuts at a word with "…"; task_submit's
#     description says who runs a task; a 2024-11-05 client gets 200 tools in one page;
#     p2p_remote_status names the connection it used;
#   `queue import --from-peer`, twice; CRASH_SEED repeats the crash harness's seed; a fresh
#     release build prints no compiler warning.
# Last line: "operator: N passed, N failed".
set -u
. "$(dirname "$0")/../support/suite.sh"
suite_init operator
bin=$PEERMCP_BIN
tmp=$suite_tmp
export PEERMCP_LOG_LEVEL=info
# no configuration of the machine leaks in: HOME and the XDG directories are the suite's
export HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" XDG_STATE_HOME="$tmp/home/.local/state"
mkdir -p "$HOME"
unset PEERMCP_CONFIG PEERMCP_STATE_DIR IPFS_ACCELERATE_PY_TASK_P2P_TOKEN IPFS_DATASETS_PY_TASK_P2P_TOKEN

# run NAME WANT_RC CMD…: runs CMD (stdout → $out, stderr → $err), checks its exit status.
run() {
  local name=$1 want=$2
  shift 2
  "$@" >"$tmp/out" 2>"$tmp/err" </dev/null
  rc=$?
  out=$(cat "$tmp/out")
  err=$(cat "$tmp/err")
  if [ "$rc" = "$want" ]; then ok "$name (exit $rc)"; else ko "$name" "exit $rc, want $want; stderr: $(head -c 400 "$tmp/err")"; fi
}
has() { # has NAME TEXT NEEDLE: NEEDLE (fixed string) in TEXT
  if grep -qF -- "$3" <<<"$2"; then ok "$1"; else ko "$1" "no '$3' in: $(head -c 500 <<<"$2")"; fi
}
hasnt() {
  if grep -qF -- "$3" <<<"$2"; then ko "$1" "'$3' in: $(head -c 500 <<<"$2")"; else ok "$1"; fi
}
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(eval(sys.argv[1]))' "$1" 2>/dev/null; }

# ------------------------------------------------------------------ the CLI, no network
run "top help" 0 "$bin" --help
has "top help: status takes an optional --peer" "$out" "peermcp status [--peer TARGET] [--detail]"
for c in serve id ping perf call task cache status worker queue; do
  run "$c --help" 0 "$bin" "$c" --help
  has "$c --help has an example" "$out" "example"
done
run "status --help" 0 "$bin" status --help
has "status --help lists --detail" "$out" "--detail"
hasnt "status --help lists no worker flag" "$out" "--slots"
hasnt "status --help lists no serve flag" "$out" "--no-p2p"
run "call --help" 0 "$bin" call --help
hasnt "call --help lists no task flag" "$out" "--type"
run "id --help" 0 "$bin" id --help
hasnt "id --help lists no serve flag" "$out" "--p2p-listen"
run "serve --help" 0 "$bin" serve --help
has "serve --help lists its flags" "$out" "--http-listen"
for c in ping perf call task cache worker queue; do
  run "$c --help" 0 "$bin" "$c" --help
  hasnt "$c --help lists no serve flag" "$out" "--p2p-listen"
  [ "$c" = worker ] || hasnt "$c --help lists no worker flag" "$out" "--slots"
done

run "ping -n 0 refused" 2 "$bin" ping -n 0 /ip4/127.0.0.1/tcp/1
has "ping -n 0: the reason" "$err" "-n: 0 is out of range 1..100000"
run "ping -n abc refused" 2 "$bin" ping -n abc /ip4/127.0.0.1/tcp/1
has "ping -n abc: the reason" "$err" "\"abc\" is not a whole number"
run "perf --upload 1X refused" 2 "$bin" perf --upload 1X /ip4/127.0.0.1/tcp/1
has "perf --upload 1X: the reason" "$err" "is not a size"
run "perf --upload 17G refused" 2 "$bin" perf --upload 17G /ip4/127.0.0.1/tcp/1
has "perf --upload 17G: the range" "$err" "out of range"
run "worker --lease abc refused" 2 "$bin" worker --lease abc
has "worker --lease abc: the reason" "$err" "\"abc\" is not a number of seconds"
run "worker --slots 0 refused" 2 "$bin" worker --slots 0
has "worker --slots 0: the reason" "$err" "--slots: 0 is out of range 1..256"
run "status --slots refused" 2 "$bin" status --slots 2
has "status --slots: not its option" "$err" "--slots is not an option of this command"
run "task list --type refused" 2 "$bin" task list --type x
run "id --no-p2p refused" 2 "$bin" id --no-p2p
has "id --no-p2p: a serve option" "$err" "is an option of \`peermcp serve\`"

run "serve --no-stdio --no-p2p refused" 2 "$bin" serve --no-stdio --no-p2p --state-dir "$tmp/s0"
has "serve with nothing to serve: says so" "$err" "nothing to serve"
run "serve --no-p2p --p2p-listen refused" 2 "$bin" serve --no-p2p --p2p-listen /ip4/127.0.0.1/tcp/0 --state-dir "$tmp/s0"
has "serve --no-p2p --p2p-listen: says so" "$err" "contradict"
# a state directory that cannot be used is a start-up error that says why
: >"$tmp/afile"
run "serve --state-dir FILE refused" 1 "$bin" serve --no-p2p --state-dir "$tmp/afile"
has "…says it is not a directory" "$err" "the state directory $tmp/afile is not a directory"
hasnt "…and not 'Permission denied'" "$err" "Permission denied"
hasnt "…and never gets ready" "$err" "ready"
[ "$(wc -l <"$tmp/err")" = 1 ] && ok "…printed once" || ko "…printed once" "$err"
run "task list --state-dir FILE refused" 1 "$bin" task list --state-dir "$tmp/afile"
has "…says it is not a directory" "$err" "is not a directory"
run "id --state-dir FILE refused" 1 "$bin" id --state-dir "$tmp/afile"
has "…says it is not a directory" "$err" "is not a directory"
run "serve --state-dir FILE/sub refused" 1 "$bin" serve --no-p2p --state-dir "$tmp/afile/sub"
has "…says it cannot be created, and why" "$err" "cannot create the state directory $tmp/afile/sub: Not a directory"
# the same for the store's own paths, and a queue file that is not SQLite: no node with "disabled" stores
printf '{"queue": {"path": "%s/afile/q.sqlite3"}}' "$tmp" >"$tmp/qpath.json"
run "queue.path under a file refused" 1 "$bin" serve --no-p2p --config "$tmp/qpath.json" --state-dir "$tmp/s3"
has "…names the queue's directory" "$err" "the queue's directory $tmp/afile is not a directory"
printf '{"cache": {"dir": "%s/afile"}}' "$tmp" >"$tmp/cdir.json"
run "cache.dir that is a file refused" 1 "$bin" serve --no-p2p --config "$tmp/cdir.json" --state-dir "$tmp/s3"
has "…names the cache directory" "$err" "the cache directory $tmp/afile is not a directory"
printf 'this is not an SQLite database, it is a text file long enough to look like one\n' >"$tmp/notsqlite.db"
printf '{"queue": {"path": "%s/notsqlite.db"}}' "$tmp" >"$tmp/qbad.json"
run "a queue file that is not SQLite refused" 1 "$bin" task list --config "$tmp/qbad.json" --state-dir "$tmp/s3"
has "…says so" "$err" "cannot open the task queue $tmp/notsqlite.db: not an SQLite database"
# a directory this user cannot write (as root: run as nobody, who cannot write a root-owned 0755 directory)
mkdir -p "$tmp/rodir" && chmod 755 "$tmp/rodir"
asuser=()
if [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null && asuser=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else
  chmod 555 "$tmp/rodir"
fi
if [ "$(id -u)" != 0 ] || [ ${#asuser[@]} -gt 0 ]; then
  chmod o+x "$tmp" 2>/dev/null
  run "serve --state-dir not writable refused" 1 "${asuser[@]}" "$bin" serve --no-p2p --state-dir "$tmp/rodir"
  has "…says it is not writable" "$err" "the state directory $tmp/rodir is not writable by this user"
  hasnt "…and never gets ready" "$err" "ready"
fi
# --no-stdio --no-p2p with HTTP is a valid daemon
peermcp_bg "$tmp/h.err" "$bin" serve --no-stdio --no-p2p --http-listen 127.0.0.1:0 --state-dir "$tmp/h"
hpid=$peermcp_pid
if wait_for 60 test -s "$tmp/h/http.json"; then ok "serve --no-stdio --no-p2p --http-listen runs"; else ko "serve --no-stdio --no-p2p --http-listen runs" "$(tail -3 "$tmp/h.err")"; fi
peermcp_stop "$hpid" TERM 60
[ "$peermcp_rc" = 0 ] && ok "…and exits 0 on SIGTERM" || ko "…and exits 0 on SIGTERM" "rc=$peermcp_rc"

# configuration messages: the value, the end-of-file column, once
printf '{"tools": {"commands": [{"name": "x", "argv": ["/bin/true"], "timeout_ms": -5}]}}' >"$tmp/bad-value.json"
run "a bad value refuses start-up" 1 "$bin" serve --config "$tmp/bad-value.json" --state-dir "$tmp/s1"
has "the message shows the value" "$err" "tools.commands[0].timeout_ms: expected an integer in 0..86400000 (0 = the server default), got -5"
[ "$(wc -l <"$tmp/err")" = 1 ] && ok "the error is printed once" || ko "the error is printed once" "$err"
printf '{"a": 1,\n  "b": [1, 2\n' >"$tmp/bad-eof.json"
run "truncated file" 1 "$bin" id --config "$tmp/bad-eof.json"
has "end of file: the column where the text stops" "$err" "bad-eof.json:2:13:"
[ "$(wc -l <"$tmp/err")" = 1 ] && ok "…printed once" || ko "…printed once" "$err"
printf '{"p2p": {"listen": ["/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/9710/quic-v1"]}}' >"$tmp/bad-listen.json"
run "a QUIC listen address is refused at load" 1 "$bin" serve --config "$tmp/bad-listen.json" --state-dir "$tmp/s1"
has "…naming it and what is supported" "$err" "p2p.listen[1]: \"/ip4/0.0.0.0/udp/9710/quic-v1\": UDP and QUIC are not supported; peermcp listens on /ip4/ADDR/tcp/PORT"
[ "$(wc -l <"$tmp/err")" = 1 ] && ok "…printed once" || ko "…printed once" "$err"
run "a /dns4 listen flag is refused" 1 "$bin" serve --p2p-listen /dns4/localhost/tcp/0 --state-dir "$tmp/s1"
has "…naming the flag" "$err" "--p2p-listen \"/dns4/localhost/tcp/0\": a listen address is an IP address, not a name"
cat >"$tmp/typo.json" <<'EOF'
{"tools": {"commands": [{"name": "wc", "argv": ["/bin/cat"],
  "input_schema": {"type": "object", "propertiez": {"text": {"type": "string"}}}}]}}
EOF
run "a typo in a command tool's input_schema" 1 "$bin" serve --config "$tmp/typo.json" --state-dir "$tmp/s1"
has "…is refused with its position and a suggestion" "$err" "typo.json:2:3: tools.commands[0].input_schema: schema #: unknown keyword \"propertiez\" (did you mean \"properties\"?)"
[ "$(wc -l <"$tmp/err")" = 1 ] && ok "…printed once" || ko "…printed once" "$err"

# the default configuration file is read by every command, as serve reads it
mkdir -p "$XDG_CONFIG_HOME/peermcp"
cat >"$XDG_CONFIG_HOME/peermcp/config.json" <<'EOF'
{"tools": {"commands": [{"name": "word_count", "description": "Count the words of a text.",
  "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
  "argv": ["/usr/bin/env", "python3", "-c", "import json,sys; a=json.load(sys.stdin); print(json.dumps({'words': len(a['text'].split())}))"],
  "output": "json", "remote": true}]}}
EOF
run "call word_count with the default config file" 0 "$bin" call word_count '{"text":"a b c"}'
[ "$(jget 'd["structuredContent"]["words"]' <<<"$out")" = 3 ] && ok "…its result" || ko "…its result" "$out"
rm -f "$XDG_CONFIG_HOME/peermcp/config.json"

# unknown task ids are errors
run "task wait of an unknown id" 1 "$bin" task wait --timeout 1 0123456789abcdef0123456789abcdef --state-dir "$tmp/s2"
has "…says not_found" "$out" '"error":"not_found"'
run "task get of an unknown id" 1 "$bin" task get nope --state-dir "$tmp/s2"
run "task cancel of an unknown id" 1 "$bin" task cancel nope --state-dir "$tmp/s2"
has "…says not_found" "$out" '"error":"not_found"'

run "id --json" 0 "$bin" id --json --state-dir "$tmp/s2"
[ "$(jget 'd["peer_id"][:8]' <<<"$out")" = "12D3KooW" ] && ok "id --json has the PeerId" || ko "id --json has the PeerId" "$out"
run "id --multiaddr without a running serve" 1 "$bin" id --multiaddr --state-dir "$tmp/s2"
has "…says why" "$err" "no announced address"

# ------------------------------------------------------------------ a node, and dialing it
mkdir -p "$tmp/a" "$tmp/cli" "$tmp/w" "$tmp/stranger"
CLI_ID=$("$bin" id --state-dir "$tmp/cli")
W_ID=$("$bin" id --state-dir "$tmp/w")
STRANGER_ID=$("$bin" id --state-dir "$tmp/stranger")
cat >"$tmp/a.json" <<EOF
{"p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$CLI_ID", "$W_ID"]},
 "tools": {"commands": [{"name": "word_count", "description": "Count the words of a text.",
   "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
   "argv": ["/usr/bin/env", "python3", "-c", "import json,sys; a=json.load(sys.stdin); print(json.dumps({'words': len(a['text'].split())}))"],
   "output": "json", "remote": true}]}}
EOF
peermcp_bg "$tmp/a.err" "$bin" serve --no-stdio --config "$tmp/a.json" --state-dir "$tmp/a"
apid=$peermcp_pid
A_MA=$(announce_multiaddr "$tmp/a")
A_ID=$("$bin" id --state-dir "$tmp/a")
A_ADDR=${A_MA%/p2p/*}
if [ -z "$A_MA" ]; then ko "node A starts" "$(tail -5 "$tmp/a.err")"; fi
run "id --multiaddr of a running node" 0 "$bin" id --multiaddr --state-dir "$tmp/a"
[ "$out" = "$A_MA" ] && ok "…is its announced address" || ko "…is its announced address" "$out vs $A_MA"
[ "$(grep -c "$A_ID" "$tmp/a.err" | head -1)" -ge 1 ] && [ "$(grep -v 'multiaddr=' "$tmp/a.err" | grep -c "$A_ID")" = 1 ] &&
  ok "the PeerId is logged once at start (besides the addresses that contain it)" ||
  ko "the PeerId is logged once at start" "$(grep -v 'multiaddr=' "$tmp/a.err" | grep "$A_ID")"

# dial errors, each its own sentence
run "a wrong PeerId at a live port" 1 "$bin" status --peer "$A_ADDR/p2p/$STRANGER_ID" --state-dir "$tmp/cli"
has "…names both ids" "$err" "the address names PeerId $STRANGER_ID, but the peer at $A_ADDR proved it is $A_ID"
has "…and the JSON says peer_id_mismatch" "$out" '"error":"peer_id_mismatch"'
run "a closed port" 1 "$bin" status --peer "/ip4/127.0.0.1/tcp/1/p2p/$A_ID" --state-dir "$tmp/cli"
has "…connection refused" "$err" "connection refused: nothing listens at /ip4/127.0.0.1/tcp/1"
run "ping: a wrong PeerId at a live port" 1 "$bin" ping -n 1 "$A_ADDR/p2p/$STRANGER_ID" --state-dir "$tmp/cli"
has "…names both ids, as status does" "$err" "the address names PeerId $STRANGER_ID, but the peer at $A_ADDR proved it is $A_ID"
run "ping: a closed port" 1 "$bin" ping -n 1 "/ip4/127.0.0.1/tcp/1/p2p/$A_ID" --state-dir "$tmp/cli"
has "…connection refused, as status says" "$err" "connection refused: nothing listens at /ip4/127.0.0.1/tcp/1"
# a port that accepts and never answers: a timeout (the host's 10 s handshake deadline)
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
held = []
end = time.time() + 120
while time.time() < end:
    s.settimeout(max(0.1, end - time.time()))
    try: held.append(s.accept()[0])
    except OSError: pass
' >"$tmp/mute.port" &
mute_pid=$!
wait_for 10 test -s "$tmp/mute.port"
run "a port that never answers" 1 "$bin" status --peer "/ip4/127.0.0.1/tcp/$(cat "$tmp/mute.port")/p2p/$A_ID" --state-dir "$tmp/cli"
has "…timed out" "$err" "timed out: /ip4/127.0.0.1/tcp/$(cat "$tmp/mute.port") did not answer in time"
has "…and the JSON says timeout" "$out" '"error":"timeout"'
kill "$mute_pid" 2>/dev/null; wait "$mute_pid" 2>/dev/null
run "garbage as --peer" 2 "$bin" status --peer garbage --state-dir "$tmp/cli"
has "…invalid, with the reason" "$err" "is neither a multiaddr"
run "a bad port in a multiaddr" 2 "$bin" status --peer /ip4/127.0.0.1/tcp/99999 --state-dir "$tmp/cli"
has "…names the part" "$err" "\"99999\" is not a valid /tcp value"
run "a PeerId with no known address" 1 "$bin" status --peer "$STRANGER_ID" --state-dir "$tmp/cli"
has "…says so" "$err" "no known address for PeerId $STRANGER_ID"
run "perf against a default serve" 1 "$bin" perf "$A_MA" --state-dir "$tmp/cli"
has "…says the protocol is not served, and how to turn it on" "$err" "does not support /perf/1.0.0 (peermcp serves it only with p2p.enable_perf"
IPFS_ACCELERATE_PY_TASK_P2P_TOKEN=secret run "a token to an address without /p2p/" 2 "$bin" status --peer "$A_ADDR" --state-dir "$tmp/cli"
has "…is refused: the token would go to whoever answers" "$err" "the token would go to whoever answers there"

run "ping -n 3" 0 "$bin" ping -n 3 "$A_MA" --state-dir "$tmp/cli"
has "ping prints a summary like ping(8)" "$out" "3 sent, 3 received, 0% loss, rtt min/avg/max = "
run "ping --json" 0 "$bin" ping --json -n 2 "$A_MA" --state-dir "$tmp/cli"
[ "$(jget 'd["received"]' <<<"$out")" = 2 ] && ok "ping --json: one JSON object" || ko "ping --json: one JSON object" "$out"

# log volume: one CLI call adds one info line to the node's log
before=$(wc -l <"$tmp/a.err")
run "call server_info on A" 0 "$bin" call --peer "$A_MA" server_info --state-dir "$tmp/cli"
wait_for 10 grep -q "p2p connection established" "$tmp/a.err"
sleep 0.5 # let the connection close (its normal end is logged at debug, and nothing follows)
added=$(tail -n +"$((before + 1))" "$tmp/a.err" | grep -c '"level":"info"')
[ "$added" = 1 ] && ok "one CLI call: one info line in the node's log" || ko "one CLI call: one info line" "$(tail -n +"$((before + 1))" "$tmp/a.err")"

# queued tasks run on a default node (p2p.workers "auto"), with one info line per step
run "submit a task to A" 0 "$bin" task submit --peer "$A_MA" '{"tool":"word_count","args":{"text":"one two"}}' --state-dir "$tmp/cli"
tid=$(jget 'd["task_id"]' <<<"$out")
run "…and wait for it" 0 "$bin" task wait --peer "$A_MA" --timeout 60 "$tid" --state-dir "$tmp/cli"
[ "$(jget 'd["task"]["status"] + " " + str(d["task"]["result"]["result"]["words"])' <<<"$out")" = "completed 2" ] &&
  ok "A's in-process workers ran it" || ko "A's in-process workers ran it" "$out"
wait_for 10 grep -q '"msg":"task completed"' "$tmp/a.err"
grep -q '"msg":"task claimed".*"level"\|"level":"info","msg":"task claimed"' "$tmp/a.err" && grep -q '"level":"info","msg":"task completed"' "$tmp/a.err" &&
  ok "claimed and completed are logged at info" || ko "claimed and completed are logged at info" "$(grep task "$tmp/a.err" | tail -3)"

run "submit a task that fails to A" 0 "$bin" task submit --peer "$A_MA" '{"tool":"word_count","args":{"text":5}}' --state-dir "$tmp/cli"
tf=$(jget 'd["task_id"]' <<<"$out")
run "…wait for it" 0 "$bin" task wait --peer "$A_MA" --timeout 60 "$tf" --state-dir "$tmp/cli"
[ "$(jget 'd["task"]["status"]' <<<"$out")" = failed ] && ok "…it failed" || ko "…it failed" "$out"
wait_for 10 grep -q "\"msg\":\"task failed.*$tf" "$tmp/a.err"
grep -q "\"level\":\"info\",\"msg\":\"task failed.*\"task_id\":\"$tf\".*\"error\"" "$tmp/a.err" &&
  ok "a failed task is logged at info, with its error" || ko "a failed task is logged at info" "$(grep task "$tmp/a.err" | tail -3)"

# p2p.workers 0: nobody runs it; a worker that lacks the tool neither claims its type nor keeps a tool.call
mkdir -p "$tmp/b"
cat >"$tmp/b.json" <<EOF
{"p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "trusted_peers": ["$CLI_ID", "$W_ID"], "workers": 0},
 "tools": {"commands": [{"name": "word_count", "input_schema": {"type": "object"},
   "argv": ["/usr/bin/env", "python3", "-c", "print(7)"], "output": "json", "remote": true}]}}
EOF
peermcp_bg "$tmp/b.err" "$bin" serve --no-stdio --config "$tmp/b.json" --state-dir "$tmp/b"
bpid=$peermcp_pid
B_MA=$(announce_multiaddr "$tmp/b")
B_ADDR=${B_MA%/p2p/*}
B_ID=${B_MA##*/p2p/}
run "submit a word_count task to B" 0 "$bin" task submit --peer "$B_MA" --type word_count '{"text":"x"}' --state-dir "$tmp/cli"
t1=$(jget 'd["task_id"]' <<<"$out")
run "a worker without word_count: --once" 0 "$bin" worker --once --peer "$B_MA" --state-dir "$tmp/w"
[ "$(jget 'd["claimed"]' <<<"$out")" = 0 ] && ok "…claims nothing (it does not advertise word_count)" || ko "…claims nothing" "$out"
run "B's status" 0 "$bin" status --peer "$B_MA" --state-dir "$tmp/cli"
run "…the task" 0 "$bin" task get --peer "$B_MA" "$t1" --state-dir "$tmp/cli"
[ "$(jget 'd["task"]["status"]' <<<"$out")" = queued ] && ok "with p2p.workers 0 the task stays queued" || ko "with p2p.workers 0 the task stays queued" "$out"
run "submit a tool.call naming word_count" 0 "$bin" task submit --peer "$B_MA" '{"tool":"word_count","args":{}}' --state-dir "$tmp/cli"
t2=$(jget 'd["task_id"]' <<<"$out")
run "the worker without it, --once" 0 "$bin" worker --once --peer "$B_MA" --state-dir "$tmp/w"
[ "$(jget 'd["released"]' <<<"$out")" = 1 ] && ok "…releases it" || ko "…releases it" "$out"
has "…with an info line" "$err" '"msg":"task released"'
run "…it is queued again" 0 "$bin" task get --peer "$B_MA" "$t2" --state-dir "$tmp/cli"
[ "$(jget 'd["task"]["status"] + " " + d["task"]["result"]["progress"]["last_release_reason"]' <<<"$out")" = "queued tool_not_found" ] &&
  ok "…queued, with the reason" || ko "…queued, with the reason" "$out"
mkdir -p "$tmp/w2"
cp "$tmp/b.json" "$tmp/w2.json"
W2_ID=$("$bin" id --state-dir "$tmp/w2")
run "a stranger's worker --once" 1 "$bin" worker --once --peer "$B_MA" --state-dir "$tmp/stranger"
has "…exits 1 saying it was refused" "$out" '"error":"unauthorized"'
has "…and logs it" "$err" '"level":"warning","msg":"worker: cannot claim tasks from the source"'
run "worker --once at a dead port" 1 "$bin" worker --once --peer "/ip4/127.0.0.1/tcp/1/p2p/$B_ID" --state-dir "$tmp/w"
has "…exits 1: connection refused" "$out" '"error":"connection_refused"'
has "…and logs it" "$err" '"level":"warning"'
run "worker with --once on the local queue" 0 "$bin" worker --once --state-dir "$tmp/s2"
has "worker running is logged at info" "$err" '"level":"info","msg":"worker running"'

# p2p_remote_status to a dead address of a peer we are connected to: the reply names the connection
cat >"$tmp/c.json" <<EOF
{"p2p": {"listen": ["/ip4/127.0.0.1/tcp/0"], "workers": 0},
 "tools": {"commands": [{"name": "long_words", "category": "demo", "argv": ["/bin/true"], "input_schema": {"type": "object"},
   "description": "Counts the words of a text and returns them as one JSON object; this first line is long enough to be cut somewhere past its hundredth character.\nSecond line."}]}}
EOF
cat >"$tmp/drive.py" <<'EOF'
import json, os, sys
sys.path.insert(0, os.environ["PEERMCP_ROOT"] + "/tests/support")
from jsonrpc_lines import LineClient
binp, st, cfg, b_ma, b_addr, b_id, mode = sys.argv[1:8]
def out(name, cond, detail=""):
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)[:600]))
if mode == "p2p":
    c = LineClient([binp, "serve", "--config", cfg, "--state-dir", st], stderr_path=st + ".err")
    c.initialize()
    r, e = c.tool("p2p_remote_status", {"remote_multiaddr": b_ma})
    out("p2p_remote_status to B", not e and r.get("ok") and r.get("via") == b_addr, r)
    dead = "/ip4/127.0.0.1/tcp/1/p2p/" + b_id
    r, e = c.tool("p2p_remote_status", {"remote_multiaddr": dead})
    out("p2p_remote_status to a dead port of B says it went over the live connection (via)",
        not e and r.get("via") == b_addr, r)
    r, e = c.tool("p2p_remote_status", {"remote_multiaddr": "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWRgVykm3tX7ztRzRyrGC2KCmeUYYWeRsmVDfBwcdvbKUB"})
    out("p2p_remote_status to a dead port of another peer: connection_refused", e and r.get("error") == "connection_refused", r)
    r = c.request("tools/call", {"name": "tools_dispatch", "arguments": {"category": "nope", "tool": "x"}})["result"]
    text = json.loads(r["content"][0]["text"])
    out("tools_dispatch error: isError, and \"status\":\"error\" in what Python callers parse (the text)",
        r.get("isError") and text.get("status") == "error" and text.get("error_type") == "unknown_category", r)
    for what, args, etype in (("unknown tool", {"category": "system", "tool": "nope"}, None),
                              ("invalid parameters", {"category": "system", "tool": "server_info", "params": {"bogus": 1}}, None)):
        r = c.request("tools/call", {"name": "tools_dispatch", "arguments": args})["result"]
        text = json.loads(r["content"][0]["text"])
        out("tools_dispatch error (%s): isError and \"status\":\"error\"" % what,
            r.get("isError") and text.get("status") == "error" and text.get("error"), r)
    r, e = c.tool("tools_get_schema", {"tool": "server_info"})
    out("tools_get_schema without a category", not e and r["schema"]["category"] == "system", r)
    r, e = c.tool("tools_list_tools", {"category": "demo"})
    full = "Counts the words of a text and returns them as one JSON object; this first line is long enough to be cut somewhere past its hundredth character."
    d = (r or {}).get("tools", [{}])[0].get("description", "")
    cut = d[:-1]
    out("tools_list_tools cuts a long description at a word, with an ellipsis",
        not e and d.endswith("\u2026") and len(d) <= 100 and full.startswith(cut) and full[len(cut)] == " "
        and not cut.endswith(" "), d)
    tools = {t["name"]: t for t in c.request("tools/list")["result"]["tools"]}
    desc = tools.get("task_submit", {}).get("description", "")
    out("task_submit's description says who runs a task (in-process workers, p2p.workers 0)",
        "in-process" in desc and "p2p.workers 0" in desc, desc)
    c.stop("eof")
elif mode == "nop2p":
    c = LineClient([binp, "serve", "--no-p2p", "--config", cfg, "--state-dir", st], stderr_path=st + ".err")
    c.initialize()
    names = [t["name"] for t in c.request("tools/list")["result"]["tools"]]
    net = [n for n in names if n.startswith("p2p_remote_") or n in ("p2p_service_status", "p2p_list_peers")]
    out("with --no-p2p the p2p network tools are not listed", not net and "server_info" in names, net)
    c.stop("eof")
elif mode == "paging":
    for ver, one_page in (("2024-11-05", True), ("2025-11-25", False)):
        c = LineClient([binp, "serve", "--no-p2p", "--config", cfg, "--state-dir", st], stderr_path=st + ".err")
        c.initialize(version=ver)
        res = c.request("tools/list")["result"]
        n = len(res["tools"])
        if one_page:
            out("a 2024-11-05 client gets every tool (200 command tools and the built-ins) in one page",
                n >= 200 and "nextCursor" not in res, (n, res.get("nextCursor")))
        else:
            out("a 2025-11-25 client pages (page_size 50)", n == 50 and "nextCursor" in res, n)
        c.stop("eof")
EOF
mkdir -p "$tmp/c"
python3 "$tmp/drive.py" "$bin" "$tmp/c" "$tmp/c.json" "$B_MA" "$B_ADDR" "$B_ID" p2p >"$tmp/drive.out" 2>&1
python3 "$tmp/drive.py" "$bin" "$tmp/c" "$tmp/c.json" "$B_MA" "$B_ADDR" "$B_ID" nop2p >>"$tmp/drive.out" 2>&1
python3 - "$tmp/many.json" <<'EOF'
import json, sys
cmds = [{"name": "t%03d" % i, "argv": ["/bin/true"], "input_schema": {"type": "object"}} for i in range(200)]
json.dump({"page_size": 50, "tools": {"commands": cmds}}, open(sys.argv[1], "w"))
EOF
mkdir -p "$tmp/many"
python3 "$tmp/drive.py" "$bin" "$tmp/many" "$tmp/many.json" - - - paging >>"$tmp/drive.out" 2>&1
cat "$tmp/drive.out"
pass=$((pass + $(grep -c '^PASS' "$tmp/drive.out")))
fail=$((fail + $(grep -c '^FAIL' "$tmp/drive.out")))
grep -q '^PASS\|^FAIL' "$tmp/drive.out" || ko "the MCP driver ran" "$(tail -5 "$tmp/drive.out")"

# perf against a node that serves it: non-zero default sizes, a rate per phase
mkdir -p "$tmp/p"
PEERMCP_P2P_ENABLE_PERF=1 peermcp_bg "$tmp/p.err" "$bin" serve --no-stdio --p2p-listen /ip4/127.0.0.1/tcp/0 --state-dir "$tmp/p"
P_MA=$(announce_multiaddr "$tmp/p")
run "perf with the defaults" 0 "$bin" perf "$P_MA" --state-dir "$tmp/cli"
[ "$(jget 'd["upload_bytes"] == 10485760 and d["download_bytes"] == 10485760 and d["upload_seconds"] > 0 and d["download_seconds"] > 0 and d["upload_mbps"] > 0 and d["download_mbps"] > 0' <<<"$out")" = True ] &&
  ok "perf: 10 MiB each way, each phase timed and rated" || ko "perf: defaults and phases" "$out"

# queue import from a running node, twice
mkdir -p "$tmp/imp"
run "a queued task with an idempotency key on B" 0 "$bin" task submit --peer "$B_MA" --idempotency-key k-1 '{"tool":"echo","args":{"n":1}}' --state-dir "$tmp/cli"
t3=$(jget 'd["task_id"]' <<<"$out")
run "cancel t1 on B" 0 "$bin" task cancel --peer "$B_MA" "$t1" --state-dir "$tmp/cli"
run "import B's tasks" 0 "$bin" queue import --from-peer "$B_MA" --state-dir "$tmp/cli"
imported=$(jget 'd["imported"]' <<<"$out")
[ "$imported" = 3 ] && ok "queue import copies every task" || ko "queue import copies every task" "$out"
run "import again" 0 "$bin" queue import --from-peer "$B_MA" --state-dir "$tmp/cli"
[ "$(jget '(d["imported"], d["skipped"])' <<<"$out")" = "(0, 3)" ] && ok "a second import copies nothing twice" || ko "a second import copies nothing twice" "$out"
run "the imported cancelled task" 0 "$bin" task get "$t1" --state-dir "$tmp/cli"
[ "$(jget 'd["task"]["status"] + " " + d["task"]["task_type"]' <<<"$out")" = "cancelled word_count" ] && ok "…keeps its id, type and state" || ko "…keeps its id, type and state" "$out"
run "the imported queued task" 0 "$bin" task get "$t3" --state-dir "$tmp/cli"
[ "$(jget 'd["task"]["status"] + " " + d["task"]["idempotency_key"] + " " + str(d["task"]["payload"]["args"]["n"])' <<<"$out")" = "queued k-1 1" ] &&
  ok "…keeps its idempotency key and payload" || ko "…keeps its idempotency key and payload" "$out"
run "import --status with a bad state" 2 "$bin" queue import --from-peer "$B_MA" --status queued,done --state-dir "$tmp/cli"
has "…names it" "$err" "\"done\" is not a task state"

# make install: the binary, the man page (the --help text) and a hardened systemd unit
stage="$tmp/stage"
if make -C "$root" install DESTDIR="$stage" >"$tmp/install.out" 2>&1; then ok "make install DESTDIR=…"; else ko "make install DESTDIR=…" "$(tail -5 "$tmp/install.out")"; fi
for f in usr/local/bin/peermcp usr/local/share/man/man1/peermcp.1 usr/local/lib/systemd/system/peermcp.service; do
  [ -s "$stage/$f" ] && ok "installs /$f" || ko "installs /$f" "$(find "$stage" -type f)"
done
[ -x "$stage/usr/local/bin/peermcp" ] && "$stage/usr/local/bin/peermcp" --version >/dev/null && ok "the installed binary runs" || ko "the installed binary runs"
if command -v man >/dev/null 2>&1; then
  page=$(MANWIDTH=200 man -l "$stage/usr/local/share/man/man1/peermcp.1" 2>/dev/null)
  has "the man page has the --help text (status's synopsis)" "$page" "peermcp status [--peer TARGET] [--detail]"
  has "the man page has each command's flags (queue import)" "$page" "--from-peer TARGET"
fi
unit="$stage/usr/local/lib/systemd/system/peermcp.service"
for want in "ExecStart=/usr/local/bin/peermcp serve --no-stdio" "DynamicUser=yes" "StateDirectory=peermcp" \
  "ProtectSystem=strict" "NoNewPrivileges=yes"; do
  grep -qxF "$want" "$unit" && ok "unit: $want" || ko "unit: $want" "$(cat "$unit")"
done
if command -v systemd-analyze >/dev/null 2>&1; then
  # verify needs the program and the man page where the unit names them: point it at the stage
  mkdir -p "$tmp/verify"
  sed "s#/usr/local/bin/peermcp#$stage/usr/local/bin/peermcp#" "$unit" >"$tmp/verify/peermcp.service"
  if MANPATH="$stage/usr/local/share/man" systemd-analyze verify "$tmp/verify/peermcp.service" >"$tmp/verify.out" 2>&1; then
    ok "systemd-analyze verify accepts the unit"
  else
    ko "systemd-analyze verify accepts the unit" "$(cat "$tmp/verify.out")"
  fi
fi

# the release build prints no compiler warning: a fresh release build of the sources as they are
# (~2 min on two cores; PEERMCP_SKIP_WARNING_BUILD=1 skips it, and the skip is printed)
if [ -n "${PEERMCP_SKIP_WARNING_BUILD:-}" ]; then
  echo "SKIP the release build prints no compiler warning (PEERMCP_SKIP_WARNING_BUILD is set)"
elif meson setup "$tmp/relbuild" "$root" --buildtype=release -Dtests=disabled >"$tmp/relbuild.setup" 2>&1; then
  nice ninja -C "$tmp/relbuild" peermcp >"$tmp/relbuild.out" 2>&1
  brc=$?
  if [ "$brc" = 0 ] && ! grep -qi "warning" "$tmp/relbuild.out"; then
    ok "the release build prints no compiler warning"
  else
    ko "the release build prints no compiler warning" "exit $brc: $(grep -i -m5 -A2 "warning\|error" "$tmp/relbuild.out")"
  fi
  rm -rf "$tmp/relbuild"
else
  ko "meson setup of a release build" "$(tail -5 "$tmp/relbuild.setup")"
fi

# the crash harness takes its seed from CRASH_SEED
crash="$root/build-asan/tests/store/crashtest"
if [ -x "$crash" ]; then
  mkdir -p "$tmp/crash"
  CRASH_SEED=4242 ASAN_OPTIONS=detect_leaks=0 "$crash" run "$tmp/crash" 1 >/dev/null 2>"$tmp/crash.err"
  grep -q "seed 4242" "$tmp/crash.err" && ok "crashtest honours CRASH_SEED" || ko "crashtest honours CRASH_SEED" "$(cat "$tmp/crash.err")"
fi

suite_end
