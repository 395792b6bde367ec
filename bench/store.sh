#!/usr/bin/env bash
# bench/store.sh: the profile store against ClickHouse, on the dataset of
# issue 3 (bench/store_bench.c generates it): S services, one profile per
# service every 10 s for H hours, ~N samples each, stacks from the pool of
# go-large.cpu.pb.gz with hourly churn.
#
# Measures, all from one run:
#   ingest      samples per CPU second in store_ingest (after decode), and the
#               peer: CPU to gunzip + decode the same profiles as pprof
#   disk        bytes of the store after flush + compaction vs the gzipped
#               pprof bytes of the same profiles, and vs ClickHouse's table
#               (series, ts, stack_id, value) after OPTIMIZE FINAL
#   query       flame graph of one service over the last 1 h and over all H
#               hours (merge + named tree + truncation to 2048 nodes: end to
#               end) and our sum-by-stack-id step alone (apples to apples) vs
#               ClickHouse's GROUP BY stack_id over the same rows (median of 5)
#   memory      peak RSS of the ingest and query processes, and ClickHouse's
#
# Usage: bench/store.sh [--small]     (default scale: 24 h x 10 services x 2000)
#   STORE_BENCH_HOURS, STORE_BENCH_SERVICES, STORE_BENCH_SAMPLES override the
#   scale; --small is 2 h x 3 services. ClickHouse (Debian clickhouse-server
#   18.16) is started by the script on 127.0.0.1:19000 in a temporary
#   directory and stopped at the end; without it the run prints our figures and then fails.
set -euo pipefail
cd "$(dirname "$0")/.."
HOURS=${STORE_BENCH_HOURS:-24}; SERVICES=${STORE_BENCH_SERVICES:-10}; SAMPLES=${STORE_BENCH_SAMPLES:-2000}
if [ "${1:-}" = "--small" ]; then HOURS=${STORE_BENCH_HOURS:-2}; SERVICES=${STORE_BENCH_SERVICES:-3}; fi
BUILD=${HEARTH_BUILD:-build}
BUILD=${BUILD#$PWD/}
export POOL_PPROF=${HEARTH_TESTDATA:-../shared/testdata}/pprof/go-large.cpu.pb.gz
make -s "$BUILD/bench/store_bench" >/dev/null
BENCH=$BUILD/bench/store_bench
SERVICE=$(( SERVICES > 3 ? 3 : SERVICES - 1 ))
work=$(mktemp -d /tmp/hearth-store-bench.XXXXXX)
ch_pid=
cleanup() {
  if [ -n "$ch_pid" ]; then kill "$ch_pid" 2>/dev/null || true; wait "$ch_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

CH_PORT=19000
have_ch=0
if command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null; then
  mkdir -p "$work/ch"
  cp /etc/clickhouse-server/users.xml "$work/ch/users.xml"
  cat > "$work/ch/config.xml" <<EOF
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>$work/ch/server.log</log><errorlog>$work/ch/err.log</errorlog><size>100M</size><count>1</count></logger>
  <tcp_port>$CH_PORT</tcp_port>
  <http_port>18123</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$work/ch/data/</path>
  <tmp_path>$work/ch/tmp/</tmp_path>
  <user_files_path>$work/ch/user_files/</user_files_path>
  <format_schema_path>$work/ch/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mark_cache_size>536870912</mark_cache_size>
</yandex>
EOF
  clickhouse-server --config-file="$work/ch/config.xml" >"$work/ch/stdout.log" 2>&1 &
  ch_pid=$!
  for _ in $(seq 1 60); do
    clickhouse-client --port $CH_PORT -q "SELECT 1" >/dev/null 2>&1 && { have_ch=1; break; }
    sleep 0.5
  done
  [ "$have_ch" = 1 ] || echo "store bench: ClickHouse did not start (see $work/ch/err.log): no peer to compare with, so this run fails after printing our own figures" >&2
else
  echo "store bench: clickhouse-server is not installed (scripts/deps --bench installs it): no peer to compare with, so this run fails after printing our own figures" >&2
fi
chq() { clickhouse-client --port $CH_PORT "$@"; }

echo "store bench: $HOURS h x $SERVICES services x ~$SAMPLES samples/profile (one profile per service per 10 s)"
if [ "$have_ch" = 1 ]; then
  chq -q "CREATE TABLE samples (series UInt32, ts DateTime, stack_id UInt32, value Int64) ENGINE = MergeTree() PARTITION BY toDate(ts) ORDER BY (series, ts, stack_id)"
  t0=$(date +%s.%N)
  "$BENCH" ingest "$work/hearth" --hours "$HOURS" --services "$SERVICES" --samples "$SAMPLES" --rowbinary - 2>"$work/ingest.txt" |
    chq -q "INSERT INTO samples FORMAT RowBinary"
  t1=$(date +%s.%N)
  chq -q "OPTIMIZE TABLE samples FINAL"
  ch_bytes=$(du -sb "$work/ch/data/data/default/samples" | cut -f1)
  ch_rows=$(chq -q "SELECT count() FROM samples")
else
  "$BENCH" ingest "$work/hearth" --hours "$HOURS" --services "$SERVICES" --samples "$SAMPLES" >"$work/ingest.txt" 2>&1
fi
grep -v '^hour ' "$work/ingest.txt" | sed 's/^/  /'
get() { grep -o "$1=[^ ]*" "$2" | tail -n 1 | cut -d= -f2; }

"$BENCH" query "$work/hearth" --service "$SERVICE" --hours "$HOURS" --reps 5 >"$work/query.txt"
sed 's/^/  /' "$work/query.txt"
hours_s=$((HOURS * 3600))
base=1795132800
series=$((SERVICE * 2 + 1))
ch_query_ms() { # from to -> median ms of 5 runs
  local from=$1 to=$2 ts=()
  for _ in 1 2 3 4 5; do
    local t
    t=$( { chq --time -q "SELECT stack_id, sum(value) FROM samples WHERE series = $series AND ts >= toDateTime($from) AND ts <= toDateTime($to) GROUP BY stack_id FORMAT Null" ; } 2>&1 | tail -n 1)
    ts+=("$t")
  done
  printf '%s\n' "${ts[@]}" | sort -g | sed -n 3p | awk '{printf "%.2f", $1 * 1000}'
}
disk=$(get bytes_total "$work/ingest.txt")
echo
echo "results"
printf "  %-44s %s\n" "ingest samples/CPU-s (store_ingest)" "$(get ingest_samples_per_cpu_s "$work/ingest.txt")"
printf "  %-44s %s\n" "peer: gunzip+decode pprof samples/CPU-s" "$(get decode_samples_per_cpu_s "$work/ingest.txt")"
printf "  %-44s %s\n" "ingest CPU / decode CPU" "$(get ingest_vs_decode_cpu "$work/ingest.txt")"
printf "  %-44s %s\n" "store bytes after compaction" "$disk"
printf "  %-44s %s\n" "store bytes / gzipped pprof bytes" "$(get disk_vs_pprof_gz "$work/ingest.txt")"
printf "  %-44s %s ms (first run %s ms; tree of %s nodes)\n" "flame graph, 1 h, one service" "$(get flame_1h_ms "$work/query.txt")" \
  "$(get flame_1h_first_ms "$work/query.txt")" "$(get flame_1h_tree_nodes "$work/query.txt")"
printf "  %-44s %s ms (first run %s ms; tree of %s nodes)\n" "flame graph, $HOURS h, one service" "$(get flame_all_ms "$work/query.txt")" \
  "$(get flame_all_first_ms "$work/query.txt")" "$(get flame_all_tree_nodes "$work/query.txt")"
printf "  %-44s %s ms / %s ms (%s / %s stacks)\n" "sum by stack id only, 1 h / $HOURS h" "$(get sums_1h_ms "$work/query.txt")" \
  "$(get sums_all_ms "$work/query.txt")" "$(get sums_1h_stacks "$work/query.txt")" "$(get sums_all_stacks "$work/query.txt")"
printf "  %-44s %s KiB\n" "peak RSS ingest (generator included)" "$(get ingest_peak_rss_kb "$work/ingest.txt")"
printf "  %-44s %s KiB\n" "peak RSS query process" "$(get query_peak_rss_kb "$work/query.txt")"
if [ "$have_ch" = 1 ]; then
  ch1=$(ch_query_ms $((base + (HOURS - 1) * 3600)) $((base + hours_s - 1)))
  chall=$(ch_query_ms $base $((base + hours_s - 1)))
  ch_rss=$(awk '/VmHWM/ {print $2}' /proc/$ch_pid/status 2>/dev/null || echo "?")
  printf "  %-44s %s rows, %s bytes (load %.1f s)\n" "ClickHouse table after OPTIMIZE FINAL" "$ch_rows" "$ch_bytes" "$(echo "$t1 - $t0" | bc)"
  printf "  %-44s %s ms / %s ms\n" "ClickHouse GROUP BY stack_id, 1 h / $HOURS h" "$ch1" "$chall"
  printf "  %-44s %s KiB\n" "ClickHouse peak RSS" "$ch_rss"
  printf "  %-44s %.3f\n" "ratio disk: store / ClickHouse" "$(echo "$disk / $ch_bytes" | bc -l)"
  echo "  ClickHouse's query only sums values by stack id (no frame names, no tree, no truncation):"
  echo "  'apples to apples' compares it with our sum-by-stack-id step alone, 'end to end' with the"
  echo "  whole flame graph the API returns (merge + named tree + truncation to 2048 nodes)."
  printf "  %-44s %.3f\n" "ratio query 1 h, apples to apples" "$(echo "$(get sums_1h_ms "$work/query.txt") / $ch1" | bc -l)"
  printf "  %-44s %.3f\n" "ratio query $HOURS h, apples to apples" "$(echo "$(get sums_all_ms "$work/query.txt") / $chall" | bc -l)"
  printf "  %-44s %.3f\n" "ratio query 1 h, end to end: store / ClickHouse" "$(echo "$(get flame_1h_ms "$work/query.txt") / $ch1" | bc -l)"
  printf "  %-44s %.3f\n" "ratio query $HOURS h, end to end" "$(echo "$(get flame_all_ms "$work/query.txt") / $chall" | bc -l)"
fi
# Ratios are the point of this bench: without the peer it has not done its job.
[ "$have_ch" = 1 ] || exit 1
