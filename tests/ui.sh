#!/usr/bin/env bash
# ui.sh: end-to-end tests of the web UI. Starts a real `hearth server` on a free
# loopback port with a temporary data dir, ingests test profiles through the
# HTTP ingest API (two versions of one service for the diff, a profile with
# span_id labels, a large profile), then drives headless Debian chromium with
# tests/ui/ui.test.js. Screenshots: $HEARTH_BUILD/ui-screenshots/.
# Ends with "N passed, N failed".
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${HEARTH_BIN:-$root/build/hearth}
build=${HEARTH_BUILD:-$root/build}
td=${HEARTH_TESTDATA:-$root/../shared/testdata}
shots=$build/ui-screenshots

fail() { echo "FAIL ui: $*"; echo "0 passed, 1 failed"; exit 1; }
[ -x /usr/bin/chromium ] || fail "/usr/bin/chromium is missing: run scripts/deps (package chromium)"
command -v node >/dev/null || fail "node is missing: run scripts/deps (package nodejs)"
[ -d "$td/pprof" ] || fail "test data not found at $td"
[ -x "$bin" ] || fail "hearth binary not found at $bin"
for f in "$root"/ui/*.js "$root"/tests/ui/*.js; do
  node --check "$f" 2>"$build/ui-syntax.log" || fail "syntax error in $f: $(head -n 5 "$build/ui-syntax.log")"
done
if [ ! -d "$root/tests/ui/node_modules/playwright-core" ]; then
  (cd "$root/tests/ui" && npm install --no-audit --no-fund --silent >/dev/null 2>&1) ||
    fail "npm install of playwright-core in tests/ui failed"
fi

tmp=$(mktemp -d /tmp/hearth-ui-XXXXXX)
port=$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')
base=http://127.0.0.1:$port
# Started from a subshell, so the test's SIGKILL of it (the "unreachable" case)
# is not reported by this shell as a killed job.
( "$bin" server --listen 127.0.0.1:"$port" --data-dir "$tmp/data" >"$tmp/server.log" 2>&1 &
  echo $! >"$tmp/pid" )
pid=$(cat "$tmp/pid")
cleanup() {
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "$base/ready" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || fail "hearth server exited at start: $(tail -n 5 "$tmp/server.log")"
  sleep 0.1
done
curl -fs "$base/ready" >/dev/null || fail "hearth server not ready after 10 s (log: $(tail -n 3 "$tmp/server.log"))"

# The UI is served from the binary, byte for byte what ui/ holds, with types a
# browser accepts (a stale build or a wrong MIME type fails here, clearly).
for f in index.html app.js style.css; do
  curl -fs "$base/$f" -o "$tmp/served" || fail "GET /$f failed"
  cmp -s "$tmp/served" "$root/ui/$f" || fail "the server's /$f differs from ui/$f: rebuild (make) so the binary embeds the current UI"
  ct=$(curl -fsI "$base/$f" | tr -d '\r' | sed -n 's/^[Cc]ontent-[Tt]ype: *//p')
  case "$f:$ct" in
    *.html:text/html*|*.js:*javascript*|*.css:text/css*) ;;
    *) fail "/$f served as '$ct'";;
  esac
done
curl -fs "$base/" | cmp -s - "$root/ui/index.html" || fail "GET / does not serve ui/index.html"

now=$(date +%s)
ingest() { # NAME FILE AGE_SECONDS
  local from=$((now - $3)) out
  out=$(curl -s -w ' HTTP %{http_code}' --data-binary @"$td/pprof/$2" \
        "$base/ingest?name=$(node -e 'console.log(encodeURIComponent(process.argv[1]))' "$1")&from=$from&until=$((from + 10))&format=pprof&spyName=gospy")
  case "$out" in *"HTTP 200"*) ;; *) fail "ingest of $2 as $1 failed: $out";; esac
}
ingest 'app{version=v1}' cpu.pb.gz 1200
ingest 'app{version=v2}' go-sample.cpu.pb.gz 300
ingest 'spans{}' single_group_with_optional_span_id.pb.gz 600
ingest 'large{}' go-large.cpu.pb.gz 900
ingest 'heap{}' heap.pb.gz 600
# A synthetic 11,111-node graph (100 x 10 x 10 distinct stacks) for the responsiveness figures.
awk 'BEGIN { for (i = 0; i < 100; i++) for (j = 0; j < 10; j++) for (k = 0; k < 10; k++)
  printf "main;svc_%d;handler_%d_%d;leaf_%d_%d_%d %d\n", i, i, j, i, j, k, (i % 7 + 1) * (k + 1) }' >"$tmp/wide.folded"
out=$(curl -s -w ' HTTP %{http_code}' --data-binary @"$tmp/wide.folded" \
      "$base/ingest?name=wide.cpu&from=$((now - 600))&until=$((now - 590))&format=folded&sampleRate=100&spyName=test")
case "$out" in *"HTTP 200"*) ;; *) fail "ingest of the synthetic folded profile failed: $out";; esac

rm -rf "$shots"; mkdir -p "$shots"
cd "$root/tests/ui" && BASE=$base SHOTS=$shots TESTDATA=$td SERVER_PID=$pid timeout -k 5 110 node ui.test.js
rc=$?
[ $rc -eq 124 ] && echo "FAIL ui: browser tests timed out" && echo "0 passed, 1 failed" && exit 1
# The server must not have reported memory or undefined-behaviour errors while serving the UI.
if grep -qE 'runtime error|AddressSanitizer|LeakSanitizer' "$tmp/server.log"; then
  grep -E -A5 'runtime error|AddressSanitizer' "$tmp/server.log" | head -n 20
  echo "FAIL ui: the server reported sanitizer errors"; echo "0 passed, 1 failed"; exit 1
fi
exit $rc
