#!/usr/bin/env bash
# preload_span_server.sh: libhearth.so against a real hearth server.
# wl_span (two threads, each working inside its own span) is profiled with
# libhearth pushing to `hearth server`; SelectMergeSpanProfile for each span
# ID must return that span's work and never the other span's. Also checks
# that the push carried the service name and the profile type, and that
# libcurl is loaded only by a process that uploads.
# Ends with "N passed, N failed".
set -u
bin=${HEARTH_BIN:-build/hearth}; lib=${HEARTH_LIB:-build/libhearth.so}; build=${HEARTH_BUILD:-build}
pass=0; fail=0
ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() { echo "FAIL $1"; fail=$((fail + 1)); }
tmp=$(mktemp -d); srv_pid=
cleanup() { [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$bin" server --listen 127.0.0.1:0 --data-dir "$tmp/data" >"$tmp/server.log" 2>&1 &
srv_pid=$!
port=
for _ in $(seq 300); do  # the port the kernel picked, as the server reports it
  port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$tmp/server.log" | head -n 1)
  [ -n "$port" ] && break
  sleep 0.1
done
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break; sleep 0.1; done

if [ -n "${HEARTH_SANITIZE:-}" ] || [[ "$build" == *san-* ]]; then
  run=("$build/workloads-preload/wl_span_linked" 30)   # sanitizer builds cannot be preloaded
  export ASAN_OPTIONS=detect_leaks=0
else
  run=(env LD_PRELOAD="$lib" "$build/workloads-preload/wl_span" 30)
fi
if HEARTH_SERVER_ADDRESS=http://127.0.0.1:$port HEARTH_APPLICATION_NAME=spantest HEARTH_CPU_HZ=250 \
   HEARTH_PROFILES=cpu HEARTH_TAGS=env=test "${run[@]}" >"$tmp/wl.log" 2>&1; then
  ok "wl_span ran under libhearth pushing to the server"
else
  bad "wl_span failed: $(tail -n 3 "$tmp/wl.log")"
fi

if [ "${run[0]}" = env ]; then
  # libcurl and its ~30 dependencies are loaded when libhearth first uploads
  # (above, to the server), not in every process it is preloaded into.
  if readelf -d "$lib" | grep -q 'NEEDED.*libcurl'; then
    bad "libhearth.so links libcurl: $(readelf -d "$lib" | grep NEEDED | tr -s ' ' | tr '\n' ' ')"
  else
    ok "libhearth.so does not link libcurl"
  fi
  # maps_of WHAT ENV...: a preloaded `sleep 2`'s maps, read from outside once
  # its collector is past start-up (2 ms, then tables and CFI).
  maps_of() {
    env LD_PRELOAD="$lib" "$@" sleep 2 & local pid=$!
    sleep 0.7
    cat "/proc/$pid/maps" 2>/dev/null
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  }
  check_no_curl() {  # check_no_curl WHAT ENV...
    local what=$1 maps; shift
    maps=$(maps_of "$@")
    if ! grep -q libhearth <<<"$maps"; then
      bad "$what: libhearth.so is not in its maps"
    elif grep -q -e libcurl -e libdebuginfod <<<"$maps"; then
      bad "$what: maps $(grep -o -e 'libcurl[^ ]*' -e 'libdebuginfod[^ ]*' <<<"$maps" | sort -u | tr '\n' ' ')"
    else
      ok "$what: no libcurl mapped"
    fi
  }
  check_no_curl "not configured" X=1
  check_no_curl "profiling to files" HEARTH_OUTPUT_DIR="$tmp/files"
  # with a server but nothing sampled (cpu only: sleep burns no CPU), the uploader (and libcurl) is not made
  check_no_curl "uploading, nothing to send yet" HEARTH_SERVER_ADDRESS="http://127.0.0.1:$port" \
    HEARTH_APPLICATION_NAME=idle HEARTH_PROFILES=cpu
fi

now=$(($(date +%s) * 1000))
query() {  # query SPAN_ID -> names of the flame graph, one per line
  curl -s -X POST -H 'Content-Type: application/json' \
    "http://127.0.0.1:$port/querier.v1.QuerierService/SelectMergeSpanProfile" \
    -d "{\"profileTypeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"labelSelector\":\"{service_name=\\\"spantest\\\",env=\\\"test\\\"}\",\"spanSelector\":[\"$1\"],\"start\":$((now - 600000)),\"end\":$((now + 60000))}" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); fg=d.get("flamegraph", d); print("\n".join(fg.get("names", [])))'
}
# The last push lands during the workload's exit: give the server a moment.
for _ in $(seq 20); do
  a=$(query a1a2a3a4a5a6a7a8 2>/dev/null); b=$(query b1b2b3b4b5b6b7b8 2>/dev/null)
  [ -n "$a" ] && [ -n "$b" ] && break
  sleep 0.25
done
[ -z "$a" ] && echo "server log: $(tail -n 5 "$tmp/server.log")"
if [[ "$build" == *san-thread* ]]; then
  # ThreadSanitizer delays signals to its next interceptor call, so samples
  # land away from the span's work (as in test_preload): only check that
  # each span selects samples of its own through the server.
  [ -n "$a" ] && ok "span a selects samples (TSan)" || bad "span a selects nothing"
  [ -n "$b" ] && ok "span b selects samples (TSan)" || bad "span b selects nothing"
else
  if grep -qx span_a_work <<<"$a" && ! grep -qx span_b_work <<<"$a" && ! grep -qx unlabelled_work <<<"$a"; then
    ok "span a selects span_a_work only"
  else
    bad "span a: got names: $(tr '\n' ' ' <<<"$a")"
  fi
  if grep -qx span_b_work <<<"$b" && ! grep -qx span_a_work <<<"$b" && ! grep -qx unlabelled_work <<<"$b"; then
    ok "span b selects span_b_work only"
  else
    bad "span b: got names: $(tr '\n' ' ' <<<"$b")"
  fi
fi
# Several intervals (1 s) uploaded while the program runs, the uploader made
# on the first: the server's cpu total must match the CPU the program used.
if [ "${run[0]}" = env ]; then
  cpu_s=$(HEARTH_SERVER_ADDRESS=http://127.0.0.1:$port HEARTH_APPLICATION_NAME=intervals HEARTH_PROFILES=cpu \
    HEARTH_UPLOAD_INTERVAL=1s env LD_PRELOAD="$lib" "$build/workloads-preload/wl_cpu" 2 300 2>/dev/null | tail -n 1)
  total=
  for _ in $(seq 20); do
    total=$(curl -s -X POST -H 'Content-Type: application/json' \
      "http://127.0.0.1:$port/querier.v1.QuerierService/SelectMergeStacktraces" \
      -d "{\"profileTypeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"labelSelector\":\"{service_name=\\\"intervals\\\"}\",\"start\":$((now - 600000)),\"end\":$(( $(date +%s) * 1000 + 60000 ))}" |
      python3 -c 'import json,sys; d=json.load(sys.stdin); print(int(d.get("flamegraph", {}).get("total", 0)))' 2>/dev/null)
    [ -n "$total" ] && [ "$total" -gt 0 ] && awk -v t="$total" -v c="$cpu_s" 'BEGIN { exit !(t / 1e9 >= c * 0.75) }' && break
    sleep 0.25
  done
  if [ -n "$cpu_s" ] && [ -n "$total" ] && awk -v t="$total" -v c="$cpu_s" 'BEGIN { r = t / 1e9 / c; exit !(r >= 0.75 && r <= 1.15) }'; then
    ok "uploads every second: the server holds $(awk -v t="$total" 'BEGIN { printf "%.2f", t / 1e9 }') s of cpu for ${cpu_s} s used"
  else
    bad "uploads every second: the server holds '${total}' ns of cpu for '${cpu_s}' s used"
  fi
  # ...sent as the run went (a periodic upload before the final one), not all at exit
  points=$(curl -s -X POST -H 'Content-Type: application/json' \
    "http://127.0.0.1:$port/querier.v1.QuerierService/SelectSeries" \
    -d "{\"profileTypeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"labelSelector\":\"{service_name=\\\"intervals\\\"}\",\"start\":$((now - 600000)),\"end\":$(( $(date +%s) * 1000 + 60000 )),\"step\":1}" |
    python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(len(s.get("points", [])) for s in d.get("series", [])))' 2>/dev/null)
  if [ "${points:-0}" -ge 2 ]; then
    ok "uploads every second: $points one-second points on the server"
  else
    bad "uploads every second: '${points}' one-second points on the server (expected 2 or more)"
  fi
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
