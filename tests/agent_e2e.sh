#!/usr/bin/env bash
# agent_e2e.sh: hearth agent -> a real hearth server -> the query API.
#
# A workload with known shares (func_a 70%, func_b 30%) runs while the agent
# profiles it (--comm) and pushes every second; the server must then list the
# service, its labels (host, comm, the --tag), and a flame graph where func_a
# holds ~70% of the workload. A second run points the agent at a port where
# nothing listens: it must keep running, count the failures and drops, and
# stop on time.
set -u
cd "$(dirname "$0")/.."
BIN=${HEARTH_BIN:-build/hearth}
WL=${HEARTH_BUILD:-$PWD/build}/workloads
TMP=$(mktemp -d)
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
SPID=
cleanup() { [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

if ! "$BIN" server --help >/dev/null 2>&1; then
  echo "hearth server is not part of this build"; echo "0 passed, 1 failed"; exit 1
fi
# port_of LOG: the port a server started with --listen 127.0.0.1:0 reports
# (the kernel picks a free one: a random fixed port can be in use), waiting
# up to 30 s (a sanitizer build on a loaded machine starts slowly).
port_of() {
  local p=
  for _ in $(seq 300); do
    p=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$1" | head -n 1)
    [ -n "$p" ] && { echo "$p"; return 0; }
    sleep 0.1
  done
  return 1
}
wait_ready() { for _ in $(seq 300); do curl -sf "$1/ready" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
"$BIN" server --listen 127.0.0.1:0 --data-dir "$TMP/data" >"$TMP/server.log" 2>&1 &
SPID=$!
PORT=$(port_of "$TMP/server.log") || bad "server did not start: $(tail -3 "$TMP/server.log")"
URL=http://127.0.0.1:$PORT
wait_ready "$URL" || bad "server did not become ready: $(tail -3 "$TMP/server.log")"

"$WL/shares_nofp" 3.5 & WPID=$!
sleep 0.1
if "$BIN" agent --server "$URL" --comm shares_nofp --rate 499 --upload-interval 1s --duration 3s --tag env=e2e >"$TMP/agent.log" 2>&1; then
  ok "agent ran and stopped after --duration"
else bad "agent failed: $(tail -3 "$TMP/agent.log")"; fi
wait $WPID

q() { curl -sf -X POST -H 'Content-Type: application/json' "$URL/querier.v1.QuerierService/$1" -d "$2"; }
vals=$(q LabelValues '{"name":"service_name"}')
if echo "$vals" | grep -q '"shares_nofp"'; then ok "service_name shares_nofp listed"
else bad "service_name values: $vals"; fi
for kv in "env e2e" "comm shares_nofp" "host $(hostname)"; do
  set -- $kv
  vals=$(q LabelValues "{\"name\":\"$1\"}")
  if echo "$vals" | grep -q "\"$2\""; then ok "label $1=$2"
  else bad "label $1: got $vals"; fi
done

now=$(date +%s%3N)
body="{\"profile_typeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"label_selector\":\"{service_name=\\\"shares_nofp\\\"}\",\"start\":$((now - 600000)),\"end\":$((now + 60000))}"
q SelectMergeStacktraces "$body" >"$TMP/flame.json"
# Share of func_a and func_b among the workload's samples, from the levels encoding.
shares=$(python3 - "$TMP/flame.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))["flamegraph"]
names = d["names"]
tot = {}
levels = []  # per depth: list of (x, total, name)
for lvl in d["levels"]:
    v = [int(x) for x in lvl["values"]]
    row, end = [], 0
    for i in range(0, len(v), 4):
        x = end + v[i]
        row.append((x, v[i + 1], names[v[i + 3]]))
        end = x + v[i + 1]
        tot[names[v[i + 3]]] = tot.get(names[v[i + 3]], 0) + v[i + 1]
    levels.append(row)
def parent(depth, x):
    for px, pt, pn in levels[depth - 1]:
        if px <= x < px + pt:
            return pn
    return None
burn_all = burn_under_spend = 0
for depth, row in enumerate(levels):
    for x, t, n in row:
        if n == "burn":
            burn_all += t
            if parent(depth, x) == "spend":
                burn_under_spend += t
a, b = tot.get("func_a", 0), tot.get("func_b", 0)
print("%.1f %.1f %d %d" % (100.0 * a / (a + b) if a + b else -1, 100.0 * b / (a + b) if a + b else -1, burn_under_spend, burn_all))
EOF
)
set -- $shares
if [ $# -eq 4 ] && awk -v a="$1" 'BEGIN {exit !(a >= 65 && a <= 75)}'; then ok "query: func_a ${1}% func_b ${2}% of the workload"
else bad "query: shares '$shares' (want func_a 70 +-5)"; fi
if [ $# -eq 4 ] && [ "$3" -gt 0 ] && [ "$3" = "$4" ]; then ok "query: every burn() under spend() ($4 ns)"
else bad "query: spend/burn totals '$shares'"; fi

# Server down: bounded, counted, on time.
DEAD=1  # nothing listens on port 1
start=$(date +%s)
"$BIN" agent --server http://127.0.0.1:$DEAD --comm shares_nofp --upload-interval 0.2s --duration 2s --max-queue 2 >"$TMP/down.log" 2>&1 &
APID=$!
"$WL/shares_nofp" 1.5 >/dev/null
wait $APID; rc=$?
el=$(( $(date +%s) - start ))
if [ $rc -eq 0 ] && [ $el -le 12 ]; then ok "server down: agent stopped in ${el}s"
else bad "server down: rc=$rc after ${el}s: $(tail -2 "$TMP/down.log")"; fi
if grep -q "dropped" "$TMP/down.log" && grep -q "last error: .*\(onnect\|refused\)" "$TMP/down.log"; then ok "server down: failures and drops reported"
else bad "server down: no drop/failure report: $(tail -3 "$TMP/down.log")"; fi

# Auth and tenants: a server that wants tokens gets the agent's Bearer token and tenant;
# a wrong token is a 401, not retried, counted as failed.
printf 'e2e-secret team-a\n' >"$TMP/tokens"
"$BIN" server --listen 127.0.0.1:0 --data-dir "$TMP/data2" --auth-token-file "$TMP/tokens" >"$TMP/server2.log" 2>&1 &
S2PID=$!
PORT2=$(port_of "$TMP/server2.log") || bad "auth server did not start: $(tail -3 "$TMP/server2.log")"
wait_ready "http://127.0.0.1:$PORT2" || bad "auth server did not become ready: $(tail -3 "$TMP/server2.log")"
"$WL/shares_nofp" 2.5 >/dev/null & WPID=$!
sleep 0.1
"$BIN" agent --server "http://127.0.0.1:$PORT2" --comm shares_nofp --rate 199 --upload-interval 0.5s --duration 1.5s \
  --auth-token e2e-secret --tenant team-a >"$TMP/auth.log" 2>&1
"$BIN" agent --server "http://127.0.0.1:$PORT2" --comm shares_nofp --rate 199 --upload-interval 0.5s --duration 1s \
  --auth-token wrong >"$TMP/noauth.log" 2>&1
wait $WPID
vals=$(curl -s -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer e2e-secret' -H 'X-Scope-OrgID: team-a' \
  "http://127.0.0.1:$PORT2/querier.v1.QuerierService/LabelValues" -d '{"name":"service_name"}')
if echo "$vals" | grep -q '"shares_nofp"'; then ok "auth: profiles stored for tenant team-a with the agent's token"
else bad "auth: tenant team-a has $vals; agent log: $(tail -2 "$TMP/auth.log")"; fi
if grep -q "HTTP 401" "$TMP/noauth.log" && grep -q "failed" "$TMP/noauth.log"; then ok "auth: a wrong token is reported (HTTP 401) and counted as failed"
else bad "auth: wrong token not reported: $(tail -2 "$TMP/noauth.log")"; fi
kill $S2PID 2>/dev/null; wait $S2PID 2>/dev/null

# Bad arguments say what is wrong.
out=$("$BIN" agent 2>&1); rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -q -- "--server URL is required"; then ok "error: no --server"
else bad "error: no --server gave rc=$rc: $out"; fi
out=$("$BIN" agent --server ftp://x 2>&1); rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -q "must start with http"; then ok "error: bad URL"
else bad "error: bad URL gave rc=$rc: $out"; fi
out=$("$BIN" agent --server http://x --tag novalue 2>&1); rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -q "KEY=VALUE"; then ok "error: bad tag"
else bad "error: bad tag gave rc=$rc: $out"; fi

echo "$pass passed, $fail failed"
