#!/usr/bin/env bash
# server.sh: the hearth server binary as an operator runs it, driven with curl:
#   - --help lists the flags; env vars configure it; /ready and /healthz answer;
#   - SIGKILL after acknowledged writes, then a restart on the same data
#     directory: every acknowledged profile is still there (WAL replay);
#   - SIGTERM drains, closes and exits 0;
#   - the client subcommands (hearth ingest / query / diff) against it.
# Bounded: every wait has a timeout; the server is killed on exit.
set -u
BIN=${HEARTH_BIN:-build/hearth}
TD=${HEARTH_TESTDATA:-../shared/testdata}
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

tmp=$(mktemp -d /tmp/hearth-server-sh.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

start() {  # start [extra flags]; sets pid and port
  : >"$tmp/log"
  HEARTH_DATA_DIR="$tmp/data" HEARTH_FSYNC=always "$BIN" server --listen 127.0.0.1:0 --access-log off "$@" 2>"$tmp/log" &
  pid=$!
  port=
  for _ in $(seq 100); do
    port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$tmp/log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { echo "server did not start:"; cat "$tmp/log"; return 1; }
  url="http://127.0.0.1:$port"
}

check "--help lists flags and env vars" '"$BIN" server --help | grep -q -- "--max-body-size" && "$BIN" server --help | grep -q HEARTH_LISTEN'
check "bad flag is a usage error" '! "$BIN" server --no-such-flag 2>/dev/null'

start || exit 1
check "/ready answers 200" '[ "$(curl -s -o /dev/null -w "%{http_code}" "$url/ready")" = 200 ]'
check "the web UI is served at / with a content type" '[ "$(curl -s -o /dev/null -w "%{http_code} %{content_type}" "$url/")" = "200 text/html; charset=utf-8" ]'
check "a gzip pprof without format= is taken as pprof" '[ "$(curl -s -o /dev/null -w "%{http_code}" --data-binary @"$TD/pprof/cpu.pb.gz" "$url/ingest?name=noformat")" = 200 ]'
check "large answers are gzipped for clients that accept it" 'curl -s -o /dev/null --data-binary @"$TD/pprof/go-large.cpu.pb.gz" "$url/ingest?name=big.cpu&format=pprof" && curl -s -D - -o /dev/null -H "Accept-Encoding: gzip" -H "Content-Type: application/json" -d "{\"profileTypeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"labelSelector\":\"{service_name=\\\"big\\\"}\",\"start\":\"0\"}" "$url/querier.v1.QuerierService/SelectMergeStacktraces" | grep -qi "^content-encoding: gzip"'
check "a chunked body far past --max-body-size is cut off" '! head -c 80000000 /dev/zero | curl -s -f -o /dev/null -H "Transfer-Encoding: chunked" --data-binary @- "$url/ingest?name=x.cpu"'
check "... and the server keeps serving" '[ "$(curl -s -o /dev/null -w "%{http_code}" "$url/ready")" = 200 ]'
check "/healthz answers 200" '[ "$(curl -s -o /dev/null -w "%{http_code}" "$url/healthz")" = 200 ]'

# acknowledged writes, then SIGKILL
acked=0
for i in $(seq 1 20); do
  code=$(printf 'main;work;leaf%d 3\nmain;idle 2\n' "$i" | curl -s -o /dev/null -w '%{http_code}' --data-binary @- \
    "$url/ingest?name=durable.cpu&sampleRate=100&from=now-10s&until=now")
  [ "$code" = 200 ] && acked=$((acked + 1))
done
check "20 writes acknowledged" '[ "$acked" = 20 ]'
kill -9 "$pid"; wait "$pid" 2>/dev/null; pid=

start || exit 1
total() {
  curl -s -H 'Content-Type: application/json' \
    -d '{"profileTypeID":"process_cpu:cpu:nanoseconds:cpu:nanoseconds","labelSelector":"{service_name=\"durable\"}","start":"0"}' \
    "$url/querier.v1.QuerierService/SelectMergeStacktraces" | sed -n 's/.*"total":"\([0-9]*\)".*/\1/p'
}
# 20 profiles x 5 samples x 10 ms
check "after SIGKILL + restart all acknowledged data is there" '[ "$(total)" = "$((20 * 5 * 10000000))" ]'

# client subcommands
if "$BIN" ingest --help >/dev/null 2>&1; then
  check "hearth ingest uploads pprof and folded" '"$BIN" ingest --url "$url" --name "cli.cpu{env=test}" "$TD/pprof/cpu.pb.gz" "$TD/collapsed/simple.txt" >/dev/null 2>"$tmp/ing"'
  check "hearth ingest sends perf script as folded (Pyroscope has no perf_script) and speedscope as is" '"$BIN" ingest --url "$url" --name "cli2.cpu" "$TD/perf-script/perf-funcab-pid-01.txt" "$TD/speedscope/simple-sampled.speedscope.json" 2>&1 | grep -q "as folded (converted from perf script)" && "$BIN" query --url "$url" --format folded --query "{service_name=\"cli2\"}" 2>/dev/null | grep -q " [0-9]" && "$BIN" ingest --url "$url" --name "cli3.cpu" "$TD/speedscope/simple-sampled.speedscope.json" 2>&1 | grep -q "as speedscope"'
  check "hearth ingest reports the message of the server" '! "$BIN" ingest --url "$url" --name "bad.notatype" "$TD/collapsed/simple.txt" 2>"$tmp/ierr" && grep -q "unknown profile type" "$tmp/ierr"'
  check "hearth query prints folded stacks" '"$BIN" query --url "$url" --type process_cpu:cpu:nanoseconds:cpu:nanoseconds --query "{service_name=\"durable\"}" --from 0 --format folded > "$tmp/q.txt" && grep -q "main;idle 400000000" "$tmp/q.txt"'
  check "hearth query writes pprof" '"$BIN" query --url "$url" --type process_cpu:cpu:nanoseconds:cpu:nanoseconds --query "{service_name=\"cli\"}" --from 0 --format pprof -o "$tmp/q.pb" && [ -s "$tmp/q.pb" ]'
  check "hearth diff prints both sides" '"$BIN" diff --url "$url" --type process_cpu:cpu:nanoseconds:cpu:nanoseconds --left-query "{service_name=\"durable\"}" --right-query "{service_name=\"cli\"}" --from 0 > "$tmp/d.txt" && grep -q "total" "$tmp/d.txt"'
  check "hearth query against a dead port fails with a message" '! "$BIN" query --url http://127.0.0.1:1 --type process_cpu:cpu:nanoseconds:cpu:nanoseconds --query "{}" 2>"$tmp/err" && [ -s "$tmp/err" ]'
fi

# a small series limit: the third series is refused with a message, the first two stay writable
kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=
mv "$tmp/data" "$tmp/data-main"
start --max-series-per-tenant 2 || exit 1
for p in p1 p2 p3; do
  printf 'a;b 1\n' | curl -s -o "$tmp/lim-$p" -w '%{http_code}' --data-binary @- "$url/ingest?name=lim.cpu%7Bpod%3D$p%7D" >"$tmp/code-$p"
done
check "--max-series-per-tenant refuses a new series past it" '[ "$(cat "$tmp/code-p1")$(cat "$tmp/code-p2")$(cat "$tmp/code-p3")" = 200200400 ] && grep -q "limit of 2 series" "$tmp/lim-p3"'
check "... and existing series stay writable" '[ "$(printf "a;b 1\n" | curl -s -o /dev/null -w "%{http_code}" --data-binary @- "$url/ingest?name=lim.cpu%7Bpod%3Dp1%7D")" = 200 ]'
kill -TERM "$pid"; wait "$pid" 2>/dev/null; pid=
rm -rf "$tmp/data"; mv "$tmp/data-main" "$tmp/data"
start || exit 1

kill -TERM "$pid"
rc=0; for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
wait "$pid"; rc=$?; pid=
check "SIGTERM exits 0" '[ "$rc" = 0 ]'
check "SIGTERM logged the drain" 'grep -q "hearth server stopped" "$tmp/log"'
check "hearth export reads the data directory offline" '"$BIN" export --data-dir "$tmp/data" --query "{service_name=\"durable\"}" --format folded 2>/dev/null | grep -q "main;idle 400000000"'

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
