#!/usr/bin/env bash
# agent.sh: the cost of hearth agent at its default rate (97 Hz, DWARF
# unwinding, kernel stacks, symbolization, pprof + upload to a local hearth
# server) vs the tools a user would otherwise run on the same workload:
#   perf record -F 97 -g -a             (frame pointer stacks, whole host)
#   perf record -F 97 --call-graph dwarf -a   (8 KiB stack copies, whole host)
# For each, in turn, on the same fixed-work workload (tests/agent/shares.c,
# mode "fixed", ~N s of CPU): the profiler's CPU time (user+sys) and peak RSS
# (GNU time), and the workload's CPU time and wall time (slowdown vs a run
# with no profiler). perf's numbers are for `perf record` alone: reading its
# perf.data (`perf report`, symbolization) would cost more on top; the agent's
# include symbolizing, encoding and uploading.
# agent_comm is the agent profiling only the workload (--comm): the cost without
# the rest of the host's processes (on a busy build machine, every new
# compiler or test binary costs the agent a CFI table and DWARF reading once).
# Then the stacks themselves: func_a's share (known: 70%) from hearth record
# and from perf record --call-graph dwarf + perf script on the same workload.
# Prints ratios agent/peer from this one run. Needs root (perf_event_open -a).
set -u
cd "$(dirname "$0")/.."
BIN=${HEARTH_BIN:-build/hearth}
WL=${HEARTH_BUILD:-$PWD/build}/workloads/shares_nofp
SECS=${AGENT_BENCH_SECS:-4}
ROUNDS=${AGENT_BENCH_ROUNDS:-2}
TMP=$(mktemp -d)
SPID=
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null; rm -rf "$TMP"' EXIT
[ -x "$WL" ] || make -s workloads >/dev/null
command -v perf >/dev/null || { echo "perf not installed (apt-get install linux-perf)"; exit 1; }

PORT=$((20000 + RANDOM % 20000))
"$BIN" server --listen 127.0.0.1:$PORT --data-dir "$TMP/data" >"$TMP/server.log" 2>&1 &
SPID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/ready" >/dev/null 2>&1 && break; sleep 0.1; done

# workload CPU seconds and wall seconds for one fixed-work run
run_workload() { /usr/bin/time -f "%U %S %e" -o "$TMP/w.time" "$WL" "$SECS" fixed; awk '{printf "%.3f %.3f\n", $1 + $2, $3}' "$TMP/w.time"; }

# profile NAME CMD...: profiler started, workload run, profiler stopped (SIGINT).
# Prints: profiler_cpu_s profiler_rss_kb workload_cpu_s workload_wall_s
profile() {
  local name=$1; shift
  /usr/bin/time -f "%U %S %M" -o "$TMP/p.time" "$@" >"$TMP/$name.log" 2>&1 &
  local ppid=$!
  sleep 1 # let it open its events and settle
  local w; w=$(run_workload)
  sleep 0.3
  pkill -INT -P $ppid 2>/dev/null
  wait $ppid 2>/dev/null
  tail -1 "$TMP/p.time" | awk -v w="$w" '{printf "%.3f %d %s\n", $1 + $2, $3, w}'
}

declare -A cpu rss wcpu wwall
add() { cpu[$1]=$(echo "${cpu[$1]:-0} $2" | awk '{print $1 + $2}'); rss[$1]=$(echo "${rss[$1]:-0} $3" | awk '{print ($2 > $1) ? $2 : $1}')
        wcpu[$1]=$(echo "${wcpu[$1]:-0} $4" | awk '{print $1 + $2}'); wwall[$1]=$(echo "${wwall[$1]:-0} $5" | awk '{print $1 + $2}'); }
for r in $(seq "$ROUNDS"); do
  set -- $(run_workload); add none 0 0 "$1" "$2"
  set -- $(profile agent "$BIN" agent --server "http://127.0.0.1:$PORT" --all --rate 97 --upload-interval 2s); add agent "$@"
  set -- $(profile agent_comm "$BIN" agent --server "http://127.0.0.1:$PORT" --comm shares_nofp --rate 97 --upload-interval 2s); add agent_comm "$@"
  set -- $(profile perf_fp perf record -q -F 97 -g -a -o "$TMP/fp.data"); add perf_fp "$@"
  set -- $(profile perf_dwarf perf record -q -F 97 --call-graph dwarf -a -o "$TMP/dwarf.data"); add perf_dwarf "$@"
done

dur=$(echo "${wwall[none]} $ROUNDS" | awk '{print $1 / $2 + 1.3}')
printf "%-11s %12s %14s %10s %14s %14s\n" profiler "cpu_s/round" "%core(approx)" "rss_MiB" "workload_cpu" "workload_wall"
for k in none agent agent_comm perf_fp perf_dwarf; do
  awk -v k=$k -v c="${cpu[$k]}" -v m="${rss[$k]}" -v wc="${wcpu[$k]}" -v ww="${wwall[$k]}" -v n="$ROUNDS" -v d="$dur" \
    'BEGIN {printf "%-11s %12.3f %13.2f%% %10.1f %14.3f %14.3f\n", k, c / n, 100 * c / n / d, m / 1024, wc / n, ww / n}'
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "n/a"}'; }
echo "ratios (agent / peer, same run; < 1 means the agent is cheaper):"
echo "  profiler cpu:   vs perf -g $(ratio "${cpu[agent]}" "${cpu[perf_fp]}")   vs perf dwarf $(ratio "${cpu[agent]}" "${cpu[perf_dwarf]}")"
echo "  profiler rss:   vs perf -g $(ratio "${rss[agent]}" "${rss[perf_fp]}")   vs perf dwarf $(ratio "${rss[agent]}" "${rss[perf_dwarf]}")"
echo "  workload cpu slowdown vs no profiler: agent $(ratio "${wcpu[agent]}" "${wcpu[none]}")  perf -g $(ratio "${wcpu[perf_fp]}" "${wcpu[none]}")  perf dwarf $(ratio "${wcpu[perf_dwarf]}" "${wcpu[none]}")"
echo "  workload wall slowdown vs no profiler: agent $(ratio "${wwall[agent]}" "${wwall[none]}")  perf -g $(ratio "${wwall[perf_fp]}" "${wwall[none]}")  perf dwarf $(ratio "${wwall[perf_dwarf]}" "${wwall[none]}")"

# Agreement with perf --call-graph dwarf on the shares (the workload's known truth: 70/30).
WLS=${HEARTH_BUILD:-$PWD/build}/workloads/shares_nofp
"$BIN" record --rate 997 --format folded -o "$TMP/h.folded" -- "$WLS" 2 >/dev/null 2>&1
perf record -q -F 997 --call-graph dwarf -o "$TMP/pd.data" -- "$WLS" 2 >/dev/null 2>&1
perf script -i "$TMP/pd.data" 2>/dev/null >"$TMP/pd.txt"
"$BIN" convert "$TMP/pd.txt" --from perf-script --to folded -o "$TMP/p.folded" >/dev/null 2>&1
sh() { awk '{n=$NF; t+=n; if ($0 ~ /func_a/) a+=n; if ($0 ~ /spend;burn/) sb+=n; if ($0 ~ /burn/) b+=n} END {if (t) printf "func_a %.1f%%, burn under spend %.1f%% (%d samples)", 100*a/t, b ? 100*sb/b : 0, t; else printf "no samples"}' "$1"; }
echo "stacks on the same workload (truth: func_a 70%, burn always under spend):"
echo "  hearth record:                  $(sh "$TMP/h.folded")"
echo "  perf record --call-graph dwarf: $(sh "$TMP/p.folded")"
