#!/usr/bin/env bash
# Folded-stacks parse throughput (MB/s) next to peers measured in the same
# run on the same file: `wc -l` (only counts lines: a floor for any line
# parser) and `awk` summing the last field (the simplest real reader of the
# format). The file is generated from the shared test data: the real-world
# perf-vertx collapsed file repeated COPIES times with 50 process variants,
# so it has many repeated and many distinct stacks, like a day of folded
# uploads. Usage: bench/folded.sh [COPIES] [ROUNDS]
set -eu
cd "$(dirname "$0")/.."
copies=${1:-150}
rounds=${2:-5}
src=${HEARTH_TESTDATA:-../shared/testdata}/collapsed/perf-vertx-stacks-01-collapsed-all.txt
[ -f "$src" ] || { echo "bench folded: missing $src" >&2; exit 1; }
make --no-print-directory -s build/bench/folded_bench >/dev/null
big=build/bench/folded-large.txt
if [ ! -s "$big" ] || [ "$(cat "$big.copies" 2>/dev/null)" != "$copies" ]; then
  for k in $(seq "$copies"); do sed "s/^java;/java-$((k % 50));/" "$src"; done >"$big"
  echo "$copies" >"$big.copies"
fi
out=$(build/bench/folded_bench "$big" "$rounds")
echo "$out" | grep -v '^BEST_S'
ours=$(echo "$out" | awk '/^BEST_S/ { print $2 }')
size=$(wc -c <"$big")

best_of() {  # best wall time in seconds of ROUNDS runs of a command
  local best=
  for _ in $(seq "$rounds"); do
    local t0 t1; t0=$(date +%s%N); "$@" >/dev/null; t1=$(date +%s%N)
    local d=$((t1 - t0)); if [ -z "$best" ] || [ "$d" -lt "$best" ]; then best=$d; fi
  done
  awk -v ns="$best" 'BEGIN { printf "%.6f\n", ns / 1e9 }'
}
wc_s=$(best_of wc -l "$big")
awk_s=$(best_of awk '{ s += $NF } END { print s }' "$big")
cli_s=$(best_of build/hearth convert "$big" --from folded --to folded -o /dev/null)
awk -v o="$ours" -v w="$wc_s" -v a="$awk_s" -v c="$cli_s" -v n="$size" 'BEGIN {
  printf "wc -l (peer, best)               %8.1f ms  %8.1f MB/s\n", w * 1e3, n / 1e6 / w
  printf "awk sum of counts (peer, best)   %8.1f ms  %8.1f MB/s\n", a * 1e3, n / 1e6 / a
  printf "hearth convert folded->folded    %8.1f ms  (read, parse, sort, write)\n", c * 1e3
  printf "ratio folded_parse / wc -l       %8.2fx time\n", o / w
  printf "ratio folded_parse / awk sum     %8.2fx time\n", o / a
}'
