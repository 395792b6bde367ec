#!/usr/bin/env bash
# server.sh: the server's costs against peers measured in the same run.
#
# 1. Ingest: POST /ingest of go-large.cpu.pb.gz (1.2 MB gzip, 20k samples) over
#    one keep-alive connection, N times, per profile; vs gunzip of the same
#    bytes (N copies concatenated, one `gzip -dc`, so no process start per copy).
#    Target (issue 4): ingest <= 2x gunzip. Run with --fsync always (the
#    default: each 200 waits for the WAL fdatasync) and --fsync never (CPU only).
# 2. Query: the store bench dataset (bench/store_bench.c), flame graph of one
#    service over the last 1 h and over everything with 2048 nodes: median
#    wall time through HTTP (SelectMergeStacktraces, JSON) vs in process
#    (store_bench query) on the same data directory.
# Usage: bench/server.sh [ROUNDS] [HOURS]    (defaults 20 and 4; bounded)
#   SERVER_BENCH_INGEST_ONLY=1 skips the query part; HEARTH_BIN picks the
#   hearth binary (e.g. an older build, for a before/after in one run).
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-20}
hours=${2:-4}
TD=${HEARTH_TESTDATA:-../shared/testdata}
file=$TD/pprof/go-large.cpu.pb.gz
[ -f "$file" ] || { echo "bench server: missing $file" >&2; exit 1; }
make --no-print-directory -s build/hearth build/bench/store_bench >/dev/null
BIN=${HEARTH_BIN:-build/hearth}

tmp=$(mktemp -d /tmp/hearth-bench-server.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

start() {  # start DATA_DIR [flags]
  local dir=$1; shift
  : >"$tmp/log"  # synchronously, so the port below is never the previous server's
  "$BIN" server --listen 127.0.0.1:0 --data-dir "$dir" --access-log off --retention 0 "$@" 2>"$tmp/log" &
  pid=$!
  port=
  for _ in $(seq 200); do
    port=$(sed -n 's/.*(port \([0-9]*\)).*/\1/p' "$tmp/log" | head -n 1)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { cat "$tmp/log"; exit 1; }
}
stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=; }
ms() { awk -v ns="$1" -v n="$2" 'BEGIN { printf "%.2f", ns / n / 1e6 }'; }

# --- gunzip peer
for _ in $(seq "$rounds"); do cat "$file"; done >"$tmp/many.gz"
t0=$(date +%s%N); gzip -dc "$tmp/many.gz" >/dev/null; t1=$(date +%s%N)
gunzip_ms=$(ms $((t1 - t0)) "$rounds")

ingest_run() {  # ingest_run FSYNC -> per-profile ms
  rm -rf "$tmp/d-$1"
  start "$tmp/d-$1" --fsync "$1"
  local url="http://127.0.0.1:$port/ingest?name=bench.cpu&format=pprof"
  local args=()
  for _ in $(seq "$rounds"); do args+=("$url"); done
  curl -s -o /dev/null --data-binary @"$file" "$url" >/dev/null  # warm up
  local a b
  a=$(date +%s%N)
  codes=$(curl -s -o /dev/null -w '%{http_code}\n' -H 'Content-Type: application/octet-stream' --data-binary @"$file" "${args[@]}" | sort | uniq -c | tr -s ' ')
  b=$(date +%s%N)
  # the store's share (store_ingest: WAL + head), from the server's own histogram
  curl -s "http://127.0.0.1:$port/metrics" | awk '/^hearth_store_ingest_duration_seconds_sum/ {s=$2} /^hearth_store_ingest_duration_seconds_count/ {n=$2} END {printf "%.2f", n ? s / n * 1000 : 0}' >"$tmp/store-$1"
  stop
  [ "$codes" = " $rounds 200" ] || { echo "bench server: unexpected answers: $codes" >&2; exit 1; }
  ms $((b - a)) "$rounds"
}
always_ms=$(ingest_run always)
never_ms=$(ingest_run never)
echo "ingest go-large.cpu.pb.gz ($(stat -c %s "$file") bytes), $rounds rounds, one keep-alive connection:"
printf "  gunzip (gzip -dc, same bytes)       %8s ms/profile\n" "$gunzip_ms"
printf "  HTTP ingest, --fsync never          %8s ms/profile   ratio %s x gunzip\n" "$never_ms" "$(awk -v a="$never_ms" -v b="$gunzip_ms" 'BEGIN{printf "%.2f", a/b}')"
printf "  HTTP ingest, --fsync always         %8s ms/profile   ratio %s x gunzip\n" "$always_ms" "$(awk -v a="$always_ms" -v b="$gunzip_ms" 'BEGIN{printf "%.2f", a/b}')"
printf "  of which store_ingest (WAL + head): %8s ms (never), %s ms (always); the rest is pprof decode + HTTP\n" "$(cat "$tmp/store-never")" "$(cat "$tmp/store-always")"

[ "${SERVER_BENCH_INGEST_ONLY:-0}" = 1 ] && exit 0

# --- query latency: store bench dataset, in process vs HTTP
build/bench/store_bench ingest "$tmp/q" --hours "$hours" --services 4 --samples 2000 >"$tmp/ingest.txt"
build/bench/store_bench query "$tmp/q" --service 3 --hours "$hours" --reps 5 >"$tmp/query.txt"
base=$((1795132800 * 1000))
end=$((base + hours * 3600 * 1000 - 1))
start "$tmp/q" --fsync never
http_q() {  # http_q START_MS END_MS -> median ms of 5
  local body="{\"profileTypeID\":\"process_cpu:cpu:nanoseconds:cpu:nanoseconds\",\"labelSelector\":\"{service_name=\\\"service-03\\\"}\",\"start\":\"$1\",\"end\":\"$2\",\"maxNodes\":\"2048\"}"
  for _ in 1 2 3 4 5; do
    curl -s -o /dev/null -w '%{time_total}\n' -H 'Content-Type: application/json' -d "$body" \
      "http://127.0.0.1:$port/querier.v1.QuerierService/SelectMergeStacktraces"
  done | sort -n | sed -n 3p | awk '{printf "%.2f", $1 * 1000}'
}
http_q "$base" "$end" >/dev/null  # warm-up: the first query after start reads block indexes from disk
h1=$(http_q $((end - 3600 * 1000 + 1)) "$end")
hall=$(http_q "$base" "$end")
stop
p1=$(sed -n 's/.*flame_1h_ms=\([0-9.]*\).*/\1/p' "$tmp/query.txt")
pall=$(sed -n 's/.*flame_all_ms=\([0-9.]*\).*/\1/p' "$tmp/query.txt")
echo "query: flame graph of service-03 (2048 nodes), store bench data ($hours h, 4 services), median of 5:"
printf "  last 1 h:  in process %8s ms   HTTP %8s ms   ratio %s\n" "$p1" "$h1" "$(awk -v a="$h1" -v b="$p1" 'BEGIN{printf "%.2f", b ? a/b : 0}')"
printf "  all %2d h:  in process %8s ms   HTTP %8s ms   ratio %s\n" "$hours" "$pall" "$hall" "$(awk -v a="$hall" -v b="$pall" 'BEGIN{printf "%.2f", b ? a/b : 0}')"
