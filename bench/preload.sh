#!/usr/bin/env bash
# bench/preload.sh: what libhearth.so costs the program it profiles, side by
# side with the tools a user would otherwise use, measured in one run.
#
#   CPU:  wl_cpu (2 threads of pure computation) under
#         none | hearth (LD_PRELOAD, defaults: 100 Hz cpu + heap sampling) |
#         gperftools libprofiler (CPUPROFILE, its default 100 Hz)
#   heap: wl_heap mix (malloc/realloc/free of 16..4096 bytes, 2 threads:
#         glibc malloc is cheaper in a single-threaded process, which no
#         profiler with a background thread keeps and no service has) under
#         none | hearth (defaults: 512 KiB mean heap sampling, cpu on too) |
#         heaptrack | gperftools heap profiler (tcmalloc + HEAPPROFILE;
#         tcmalloc alone is shown too, since it also swaps the allocator)
#
# Each configuration runs REPS times, interleaved (A B C A B C ...) so drift
# on a shared machine hits all alike. Two figures, medians: "work", the CPU
# seconds the workload measured for its own work (CLOCK_PROCESS_CPUTIME_ID
# at the end of main: includes the profiler's signal handler, allocator
# shim and background thread while the program runs, i.e. the steady-state
# cost), and "total", user+sys of the whole process tree from GNU time
# (adds start-up and the flush at exit: symbolizing, encoding, writing).
# CPU time moves far less than wall time under contention. Ratios are
# against "none" from the same run.
# Usage: bench/preload.sh [BUILD]   (REPS=5, CPU_ROUNDS=100, HEAP_MIB=8000, PARTS="cpu heap")
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
reps=${REPS:-5}
lib=$PWD/$build/libhearth.so
wl=$PWD/$build/workloads-preload
for f in "$lib" "$wl/wl_cpu" "$wl/wl_heap"; do
  [ -e "$f" ] || { echo "bench preload: $f missing (run make all)"; exit 1; }
done
profiler=$(ls /usr/lib/x86_64-linux-gnu/libprofiler.so.0 2>/dev/null || true)
tcmalloc=$(ls /usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 2>/dev/null || true)
heaptrack=$(command -v heaptrack || true)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# cpu_seconds CMD...: "work/total": the workload's own CPU seconds (its
# stdout) and user+sys of the whole process tree.
cpu_seconds() {
  /usr/bin/time -f '%U %S' -o "$tmp/time" "$@" >"$tmp/out" 2>"$tmp/err" || { echo "FAILED"; return; }
  printf '%s/%s' "$(grep -E '^[0-9]+\.[0-9]+$' "$tmp/out" | tail -n 1)" "$(awk '{printf "%.3f", $1 + $2}' "$tmp/time")"
}
col() { local c=$1; shift; for v in "$@"; do echo "$v" | cut -d/ -f"$c"; done; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

run_set() {  # run_set NAME... ; each NAME has a function cmd_NAME
  local names=("$@") r n
  declare -gA results=()
  for ((r = 0; r < reps; r++)); do
    for n in "${names[@]}"; do results[$n]+="$(cmd_$n) "; done
  done
}
report() {  # report BASE NAME...
  local base=$1; shift
  local bw bt; bw=$(median $(col 1 ${results[$base]})); bt=$(median $(col 2 ${results[$base]}))
  printf '  %-18s work %7.3f s            total %7.3f s            (runs work/total: %s)\n' "$base" "$bw" "$bt" "${results[$base]}"
  for n in "$@"; do
    local mw mt; mw=$(median $(col 1 ${results[$n]})); mt=$(median $(col 2 ${results[$n]}))
    awk -v n="$n" -v mw="$mw" -v mt="$mt" -v bw="$bw" -v bt="$bt" -v runs="${results[$n]}" \
      'BEGIN {printf "  %-18s work %7.3f s (%+6.1f%%)  total %7.3f s (%+6.1f%%)  (runs: %s)\n", n, mw, (mw / bw - 1) * 100, mt, (mt / bt - 1) * 100, runs}'
    eval "med_work_$n=$mw"
  done
  eval "med_work_$base=$bw"
}

parts=${PARTS:-cpu heap}
if [[ " $parts " == *" cpu "* ]]; then
rounds=${CPU_ROUNDS:-100}
echo "CPU workload: wl_cpu 2 threads x $rounds rounds; median CPU seconds of $reps interleaved runs"
cmd_none()   { cpu_seconds "$wl/wl_cpu" 2 "$rounds"; }
cmd_hearth() { cpu_seconds env LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h "$wl/wl_cpu" 2 "$rounds"; }
cmd_gperftools_cpu() { cpu_seconds env LD_PRELOAD="$profiler" CPUPROFILE=$tmp/cpu.prof "$wl/wl_cpu" 2 "$rounds"; }
cmd_hearth_cpu_only() { cpu_seconds env LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h HEARTH_PROFILES=cpu "$wl/wl_cpu" 2 "$rounds"; }
set_names=(none hearth hearth_cpu_only)
[ -n "$profiler" ] && set_names+=(gperftools_cpu) || echo "  (gperftools libprofiler not installed: apt-get install libgoogle-perftools-dev)"
run_set "${set_names[@]}"
report none "${set_names[@]:1}"
if [ -n "$profiler" ]; then
  awk -v h="$med_work_hearth" -v g="$med_work_gperftools_cpu" -v n="$med_work_none" \
    'BEGIN {printf "  work overhead: hearth %+.2f%%, gperftools %+.2f%%\n", (h/n-1)*100, (g/n-1)*100}'
fi

fi

if [[ " $parts " == *" heap "* ]]; then
mib=${HEAP_MIB:-8000}
echo "heap workload: wl_heap mix ${mib} MiB of malloc/realloc/free (16..4096 B) on 2 threads; median CPU seconds of $reps interleaved runs"
cmd_none()      { cpu_seconds "$wl/wl_heap" 0 "$mib" mix; }
cmd_hearth()    { cpu_seconds env LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h "$wl/wl_heap" 0 "$mib" mix; }
cmd_hearth_heap_only() { cpu_seconds env LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h HEARTH_PROFILES=heap "$wl/wl_heap" 0 "$mib" mix; }
cmd_heaptrack() { cpu_seconds "$heaptrack" -o "$tmp/ht.%p" "$wl/wl_heap" 0 "$mib" mix; rm -f "$tmp"/ht.*; }
cmd_tcmalloc()  { cpu_seconds env LD_PRELOAD="$tcmalloc" "$wl/wl_heap" 0 "$mib" mix; }
cmd_gperftools_heap() { cpu_seconds env LD_PRELOAD="$tcmalloc" HEAPPROFILE=$tmp/heap.prof "$wl/wl_heap" 0 "$mib" mix; }
set_names=(none hearth hearth_heap_only)
[ -n "$heaptrack" ] && set_names+=(heaptrack) || echo "  (heaptrack not installed)"
[ -n "$tcmalloc" ] && set_names+=(tcmalloc gperftools_heap)
run_set "${set_names[@]}"
report none "${set_names[@]:1}"
fi
