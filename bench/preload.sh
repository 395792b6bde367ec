#!/usr/bin/env bash
# bench/preload.sh: what libhearth.so costs the program it profiles, side by
# side with the tools a user would otherwise use, measured in one run.
#
#   CPU:  wl_cpu (2 threads of pure computation, ~5 CPU seconds) under
#         none | hearth (LD_PRELOAD, defaults: 100 Hz cpu + heap sampling) |
#         hearth cpu only | gperftools libprofiler (CPUPROFILE, its default
#         100 Hz)
#   heap: wl_heap mix (malloc/realloc/free of 16..4096 bytes, 2 threads:
#         glibc malloc is cheaper in a single-threaded process, which no
#         profiler with a background thread keeps and no service has,
#         ~5 CPU seconds) under none | hearth (defaults: heap sampling at
#         a mean of 512 KiB or more, within 1000 samples a second, cpu on
#         too) | hearth heap only | hearth heap only at a fixed 512 KiB
#         mean (no sample budget: ~30,000 samples a second here) | tcmalloc alone
#         (the allocator gperftools' heap profiler swaps in). heaptrack and the
#         gperftools heap profiler (tcmalloc + HEAPPROFILE) are 4x and 40x
#         slower, so they run a twentieth of the work, against a "none" of
#         that same size in the same rounds.
#   real: a real program, malloc-heavy but doing other work too: Debian's
#         perl running a text-processing script (split, join, hashes of
#         arrays of strings, built and freed: ~1 M malloc calls per second,
#         ~10% of its cycles in glibc's allocator, measured here with perf
#         record when perf is installed) under none | hearth (defaults) |
#         one idle thread and no profiler (what making the process
#         multi-threaded alone costs glibc's malloc) | tcmalloc alone |
#         heaptrack | gperftools heap profiler (the slow peers on a third
#         of the work against a "none" of that size).
#
# Each configuration runs REPS times, interleaved: every round runs each
# configuration once, in a new random order (shuf), so drift on a shared
# machine hits all alike and no configuration always follows the same
# one. Per run three figures: "work", the CPU
# seconds the workload measured for its own work (CLOCK_PROCESS_CPUTIME_ID
# at the end of main: includes the profiler's signal handler, allocator
# shim and background thread while the program runs, i.e. the steady-state
# cost); "total", user+sys of the whole process tree from GNU time (adds
# loading, start-up and the flush at exit: symbolizing, encoding, writing);
# "wall", elapsed seconds (moves most under contention). Overheads are
# paired: each round's run is divided by the same round's unprofiled run,
# and the median of those ratios is reported with a bootstrap 95% interval
# (2000 resamples of the rounds) and their spread (min..max over the
# rounds), so a slow moment of the machine hits both sides of a ratio.
# "noise" is the spread of the unprofiled runs themselves (max/min - 1).
# The verdict compares the median with the target and says whether the
# interval lies wholly below it, above it, or straddles it (the run does
# not resolve the difference).
#
# "start": what being preloaded costs a short-lived program (/bin/true,
# wall ms per exec) for hearth loaded, hearth profiling to files, and the
# gperftools libraries loaded.
#
# "instr" (when valgrind is installed): the heap workload's instructions
# under callgrind, which no other load on the machine changes: the
# program's own work (inclusive instructions of mix(): the allocator
# wrappers and the sampled path run inside it), and the collector thread's
# start-up and final flush, for none | libhearth loaded but not started
# (the interposition alone) | hearth heap profiling at the defaults.
# Usage: bench/preload.sh [BUILD]
#   REPS=11 CPU_ROUNDS=350 HEAP_MIB=56000 REAL_ROUNDS=3 REAL_REPS=5 INSTR_MIB=1000
#   PARTS="cpu heap real start instr" (start: START_EXECS=100)
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
reps=${REPS:-11}
lib=$PWD/$build/libhearth.so
wl=$PWD/$build/workloads-preload
for f in "$lib" "$wl/wl_cpu" "$wl/wl_heap"; do
  [ -e "$f" ] || { echo "bench preload: $f missing (run make all)"; exit 1; }
done
profiler=$(ls /usr/lib/x86_64-linux-gnu/libprofiler.so.0 2>/dev/null || true)
tcmalloc=$(ls /usr/lib/x86_64-linux-gnu/libtcmalloc.so.4 2>/dev/null || true)
heaptrack=$(command -v heaptrack || true)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# The real program (perl): per round, 150000 lines made with join and taken
# apart with split, into a hash of arrays of strings plus one string per
# key, counted, half deleted, then the whole hash freed. Prints its CPU
# seconds at the end.
cat >"$tmp/hashes.pl" <<'PERL'
my $rounds = shift // 3;
for my $r (1 .. $rounds) {
    my %h;
    for my $i (1 .. 150000) {
        my $line = join(",", "user" . ($i * 7919 % 100003), "item$i", $i * $r, "x" x ($i % 64));
        my ($u, $item, $n, $pad) = split /,/, $line;
        push @{ $h{$u} }, "$item:$n";
        $h{"$u:last"} = $pad . $item;
    }
    my $total = 0;
    $total += scalar @{ $h{$_} } for grep { !/:last$/ } keys %h;
    delete $h{$_} for grep { /:last$/ } keys %h;
}
printf "%.3f\n", (times)[0] + (times)[1];
PERL

# measure CMD...: "work/total/wall": the workload's own CPU seconds (its
# stdout), user+sys of the whole process tree, elapsed seconds.
measure() {
  /usr/bin/time -f '%U %S %e' -o "$tmp/time" "$@" >"$tmp/out" 2>"$tmp/err" || { echo "FAILED"; return; }
  printf '%s/%s' "$(grep -E '^[0-9]+\.[0-9]+$' "$tmp/out" | tail -n 1)" \
    "$(awk '{printf "%.3f/%.3f", $1 + $2, $3}' "$tmp/time")"
}

run_set() {  # run_set NAME... ; each NAME has a function cmd_NAME
  local names=("$@") r n v
  declare -gA results=()
  for ((r = 0; r < reps; r++)); do
    for n in $(printf '%s\n' "${names[@]}" | shuf); do
      v=$(cmd_$n)
      [ "$v" = FAILED ] && { echo "  $n failed: $(tail -n 3 "$tmp/err")"; exit 1; }
      results[$n]+="$v "
    done
  done
}

# stats BASE NAME: per figure (work, total, wall), "median [min..max]" of
# NAME's seconds and of the paired ratios NAME/BASE - 1 in percent; for
# work, also the bootstrap 95% interval of the median ratio.
stats() {
  awk -v base="${results[$1]}" -v runs="${results[$2]}" -v name="$2" '
    function med(a, n,   i, j, t) {
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function shellsort(a, n,   gap, i, j, t) {
      for (gap = int(n / 2); gap > 0; gap = int(gap / 2))
        for (i = gap + 1; i <= n; i++) { t = a[i]; for (j = i; j > gap && a[j - gap] > t; j -= gap) a[j] = a[j - gap]; a[j] = t }
    }
    # The 2.5th and 97.5th percentiles of the median of a, over 2000
    # resamples of its n values with replacement: sets boot_lo, boot_hi.
    function boot(a, n,   k, i, x, bm) {
      srand(12345)
      for (k = 1; k <= 2000; k++) {
        for (i = 1; i <= n; i++) x[i] = a[int(rand() * n) + 1]
        bm[k] = med(x, n)
      }
      shellsort(bm, 2000)
      boot_lo = bm[51]; boot_hi = bm[1950]
    }
    function sorted_min(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] < m) m = a[i]; return m }
    function sorted_max(a, n,   i, m) { m = a[1]; for (i = 2; i <= n; i++) if (a[i] > m) m = a[i]; return m }
    BEGIN {
      nb = split(base, b, " "); nr = split(runs, r, " ")
      n = nb < nr ? nb : nr
      split("work total wall", fig, " ")
      line = sprintf("  %-18s", name)
      for (f = 1; f <= 3; f++) {
        for (i = 1; i <= n; i++) {
          split(b[i], bv, "/"); split(r[i], rv, "/")
          s[i] = rv[f]; q[i] = (rv[f] / bv[f] - 1) * 100
        }
        lo = sorted_min(q, n); hi = sorted_max(q, n)
        if (f == 1) boot(q, n)
        m = med(s, n); mq = med(q, n)
        if (f == 1) {
          line = line sprintf(" %s %6.3fs %+6.1f%% (95%% %+.1f..%+.1f) [%+.1f..%+.1f]", fig[f], m, mq, boot_lo, boot_hi, lo, hi)
          printf "%s=%.4f %.4f %.4f\n", name, mq, boot_lo, boot_hi > "/dev/stderr"
        } else {
          line = line sprintf(" %s %6.3fs %+6.1f%% [%+.1f..%+.1f]", fig[f], m, mq, lo, hi)
        }
      }
      print line
    }' 2>>"$tmp/paired"
}
noise() {  # noise BASE: spread of the unprofiled runs, per figure
  awk -v runs="${results[$1]}" -v name="$1" 'BEGIN {
    n = split(runs, r, " "); line = sprintf("  %-18s", name)
    split("work total wall", fig, " ")
    for (f = 1; f <= 3; f++) {
      lo = 1e18; hi = 0; for (i = 1; i <= n; i++) { split(r[i], v, "/"); if (v[f] < lo) lo = v[f]; if (v[f] > hi) hi = v[f]; s[i] = v[f] }
      for (i = 2; i <= n; i++) { t = s[i]; for (j = i - 1; j >= 1 && s[j] > t; j--) s[j + 1] = s[j]; s[j + 1] = t }
      m = n % 2 ? s[(n + 1) / 2] : (s[n / 2] + s[n / 2 + 1]) / 2
      line = line sprintf(" %s %6.3fs noise %4.1f%%       ", fig[f], m, (hi / lo - 1) * 100)
    }
    print line }'
}
# paired NAME: "median lo hi" of NAME's paired work overhead (percent).
paired() { grep "^$1=" "$tmp/paired" | tail -n 1 | cut -d= -f2; }
verdict() {  # verdict WHAT NAME TARGET_PERCENT PEER...
  local what=$1 n=$2 target=$3; shift 3
  local h; h=$(paired "$n")
  local peers="" p v
  for p in "$@"; do v=$(paired "$p"); [ -n "$v" ] && peers+="$p $(printf '%+.1f' "${v%% *}")%, "; done
  awk -v w="$what" -v h="$h" -v t="$target" -v peers="${peers%, }" 'BEGIN {
    split(h, v, " "); m = v[1]; lo = v[2]; hi = v[3]
    how = hi <= t ? "the whole interval below it" : lo > t ? "the whole interval above it" : "the interval straddles it: not resolved by this run"
    printf "  %s: hearth work %+.2f%% (95%% %+.2f..%+.2f; target <= %g%%: %s, %s); peers: %s\n",
      w, m, lo, hi, t, m <= t ? "met" : "NOT met", how, peers == "" ? "none installed" : peers }'
}

# report WHAT: the heap parts' figures: set_names against none, slow_names
# against none_small (same rounds), then the verdict on hearth's overhead.
report() {
  noise none
  for n in "${set_names[@]:1}"; do stats none "$n"; done
  noise none_small
  for n in "${slow_names[@]:1}"; do stats none_small "$n"; done
  verdict "$1" hearth 3 heaptrack gperftools_heap
}

parts=${PARTS:-cpu heap real start instr}
if [[ " $parts " == *" cpu "* || " $parts " == *" heap "* || " $parts " == *" real "* ]]; then
  echo "libhearth overhead, $reps interleaved rounds; per configuration: median seconds, median paired overhead vs none (bootstrap 95% interval, work only) [min..max over rounds]"
fi
if [[ " $parts " == *" cpu "* ]]; then
rounds=${CPU_ROUNDS:-350}
echo "CPU workload: wl_cpu 2 threads x $rounds rounds"
cmd_none()   { measure "$wl/wl_cpu" 2 "$rounds"; }
cmd_hearth() { measure env LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h "$wl/wl_cpu" 2 "$rounds"; }
cmd_gperftools_cpu() { measure env LD_PRELOAD="$profiler" CPUPROFILE=$tmp/cpu.prof "$wl/wl_cpu" 2 "$rounds"; }
cmd_hearth_cpu_only() { measure env LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h HEARTH_PROFILES=cpu "$wl/wl_cpu" 2 "$rounds"; }
set_names=(none hearth hearth_cpu_only)
[ -n "$profiler" ] && set_names+=(gperftools_cpu) || echo "  (gperftools libprofiler not installed: apt-get install libgoogle-perftools-dev)"
run_set "${set_names[@]}"
noise none
for n in "${set_names[@]:1}"; do stats none "$n"; done
verdict "CPU" hearth 1 gperftools_cpu
fi

if [[ " $parts " == *" heap "* ]]; then
mib=${HEAP_MIB:-56000}
small=$((mib / 20))
echo "heap workload: wl_heap mix ${mib} MiB of malloc/realloc/free (16..4096 B) on 2 threads (slow peers: ${small} MiB)"
cmd_none()      { measure "$wl/wl_heap" 0 "$mib" mix; }
cmd_hearth()    { measure env LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h "$wl/wl_heap" 0 "$mib" mix; }
cmd_hearth_heap_only() { measure env LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h HEARTH_PROFILES=heap "$wl/wl_heap" 0 "$mib" mix; }
cmd_hearth_heap_fixed_512k() { measure env LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h HEARTH_PROFILES=heap HEARTH_HEAP_SAMPLES_PER_SECOND=0 "$wl/wl_heap" 0 "$mib" mix; }
cmd_tcmalloc()  { measure env LD_PRELOAD="$tcmalloc" "$wl/wl_heap" 0 "$mib" mix; }
cmd_none_small() { measure "$wl/wl_heap" 0 "$small" mix; }
cmd_heaptrack() { measure "$heaptrack" -o "$tmp/ht.%p" "$wl/wl_heap" 0 "$small" mix; rm -f "$tmp"/ht.*; }
cmd_gperftools_heap() { measure env LD_PRELOAD="$tcmalloc" HEAPPROFILE=$tmp/heap.prof "$wl/wl_heap" 0 "$small" mix; rm -f "$tmp"/heap.prof*; }
set_names=(none hearth hearth_heap_only hearth_heap_fixed_512k)
[ -n "$tcmalloc" ] && set_names+=(tcmalloc)
slow_names=(none_small)
[ -n "$heaptrack" ] && slow_names+=(heaptrack) || echo "  (heaptrack not installed)"
[ -n "$tcmalloc" ] && slow_names+=(gperftools_heap) || echo "  (gperftools tcmalloc not installed)"
run_set "${set_names[@]}" "${slow_names[@]}"
report "heap"
fi

if [[ " $parts " == *" real "* ]]; then
if ! command -v perl >/dev/null; then
  echo "real program: perl not installed"
else
rr=${REAL_ROUNDS:-3}
rsmall=$(( rr / 3 > 0 ? rr / 3 : 1 ))
echo "real program: perl building and freeing hashes of strings, $rr rounds (slow peers: $rsmall), ${REAL_REPS:-5} interleaved rounds"
if command -v perf >/dev/null && perf record -q -o "$tmp/perf.data" -F 999 perl "$tmp/hashes.pl" 1 >/dev/null 2>&1; then
  perf report -i "$tmp/perf.data" --no-children --sort dso,sym --stdio 2>/dev/null | awk '
    /^ +[0-9.]+%/ { t += $1; if ($2 ~ /^libc\.so/ && $4 ~ /malloc|free|realloc|calloc|^_int_|consolidate|unlink_chunk|tcache|memalign|sbrk/) m += $1 }
    END { printf "  perf record: %.1f%% of its cycles in glibc malloc/free/realloc (and their internals)\n", m }'
fi
cmd_none()     { measure perl "$tmp/hashes.pl" "$rr"; }
cmd_hearth()   { measure env LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h perl "$tmp/hashes.pl" "$rr"; }
cmd_tcmalloc() { measure env LD_PRELOAD="$tcmalloc" perl "$tmp/hashes.pl" "$rr"; }
cmd_idle_thread() { measure env LD_PRELOAD="$tmp/idle_thread.so" perl "$tmp/hashes.pl" "$rr"; }
cmd_none_small() { measure perl "$tmp/hashes.pl" "$rsmall"; }
cmd_heaptrack() { measure "$heaptrack" -o "$tmp/ht.%p" perl "$tmp/hashes.pl" "$rsmall"; rm -f "$tmp"/ht.*; }
cmd_gperftools_heap() { measure env LD_PRELOAD="$tcmalloc" HEAPPROFILE=$tmp/heap.prof perl "$tmp/hashes.pl" "$rsmall"; rm -f "$tmp"/heap.prof*; }
# A second thread that only sleeps, no profiler: glibc's malloc leaves its
# single-threaded fast paths once a process has two threads, which any
# profiler with a background thread causes.
printf '#include <pthread.h>\n#include <unistd.h>\nstatic void *idle(void *a) { (void)a; for (;;) pause(); return 0; }\n__attribute__((constructor)) static void start(void) { pthread_t t; if (pthread_create(&t, 0, idle, 0) == 0) pthread_detach(t); }\n' >"$tmp/idle_thread.c"
set_names=(none hearth)
cc -O2 -shared -fPIC -pthread -o "$tmp/idle_thread.so" "$tmp/idle_thread.c" 2>/dev/null && set_names+=(idle_thread)
[ -n "$tcmalloc" ] && set_names+=(tcmalloc)
slow_names=(none_small)
[ -n "$heaptrack" ] && slow_names+=(heaptrack)
[ -n "$tcmalloc" ] && slow_names+=(gperftools_heap)
reps_saved=$reps; reps=${REAL_REPS:-5}
run_set "${set_names[@]}" "${slow_names[@]}"
reps=$reps_saved
report "real (perl)"
fi
fi

if [[ " $parts " == *" start "* ]]; then
# What being preloaded costs a short-lived program: /bin/true run 100 times
# per round (a shell script spawning processes pays this per command), wall
# milliseconds per exec. libhearth not configured (loaded only), and
# configured to write profiles to files or to send them to a server (port
# 9: nothing to send from /bin/true, so libcurl is never loaded; starts its
# collector, flushes at exit); the peers loaded the same way without
# profiling.
n_exec=${START_EXECS:-100}
echo "start-up: /bin/true x $n_exec per round, ${reps} interleaved rounds; per configuration: median ms per exec, median paired overhead vs none"
execs() {  # execs ENV...: wall ms per exec, as "x/x/x" so stats can read it
  local t0 t1 i
  t0=$(date +%s%N)
  for ((i = 0; i < n_exec; i++)); do env "$@" /bin/true; done
  t1=$(date +%s%N)
  awk -v ns=$((t1 - t0)) -v n="$n_exec" 'BEGIN { v = ns / n / 1e6; printf "%.4f/%.4f/%.4f", v, v, v }'
}
cmd_none() { execs X=1; }
cmd_hearth_loaded() { execs LD_PRELOAD="$lib"; }
cmd_hearth_to_files() { execs LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR="$tmp/h" HEARTH_PROFILES=cpu,heap; }
cmd_hearth_to_server() { execs LD_PRELOAD="$lib" HEARTH_SERVER_ADDRESS=http://127.0.0.1:9 HEARTH_PROFILES=cpu,heap; }
cmd_gperftools_loaded() { execs LD_PRELOAD="$profiler"; }
cmd_tcmalloc_loaded() { execs LD_PRELOAD="$tcmalloc"; }
set_names=(none hearth_loaded hearth_to_files hearth_to_server)
[ -n "$profiler" ] && set_names+=(gperftools_loaded)
[ -n "$tcmalloc" ] && set_names+=(tcmalloc_loaded)
run_set "${set_names[@]}"
noise none | sed 's/ total .*//; s/work \( *[0-9.]*\)s/\1 ms/'
for n in "${set_names[@]:1}"; do stats none "$n" | sed 's/ total .*//; s/work \( *[0-9.]*\)s/\1 ms/'; done
rm -rf "$tmp/h"
fi

if [[ " $parts " == *" instr "* ]]; then
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
  echo "instructions: valgrind not installed (apt-get install valgrind)"
else
# cg WORKFN NAME ENV... -- CMD...: "work collector startup flush total"
# instruction counts (work: inclusive instructions of function WORKFN).
cg() {
  local fn=$1 name=$2 envs=() ; shift 2
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  env "${envs[@]}" valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.$name" "$@" \
    >/dev/null 2>"$tmp/cg.$name.err" || { echo FAILED; return; }
  callgrind_annotate --inclusive=yes --threshold=100 "$tmp/cg.$name" 2>/dev/null | awk -v work="$fn" '
    /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
    /^ *[0-9,]+ \(/ {
      for (i = 2; i <= NF; i++) if ($i ~ /:[A-Za-z_]+$/ && $(i + 1) ~ /^\[/) { fn = $i; sub(/.*:/, "", fn); break }
      n = $1; gsub(",", "", n)
      if (!(fn in seen)) { seen[fn] = n }
    }
    END { printf "%.0f %.0f %.0f %.0f %.0f\n", seen[work], seen["collector_main"], seen["pl_unwind_refresh"], seen["build_and_emit"], total }'
}
# cg_report WHAT WORKFN CMD...: none | loaded, not started | hearth heap at the defaults.
cg_report() {
  local what=$1 fn=$2; shift 2
  local base loaded heap
  base=$(cg "$fn" none X=1 -- "$@")
  loaded=$(cg "$fn" loaded LD_PRELOAD="$lib" -- "$@")
  heap=$(cg "$fn" hearth_heap LD_PRELOAD="$lib" HEARTH_OUTPUT_DIR=$tmp/h HEARTH_PROFILES=heap -- "$@")
  echo "instructions (callgrind, deterministic): $what"
  awk -v b="$base" -v l="$loaded" -v h="$heap" -v fn="$fn" 'BEGIN {
    split(b, B, " "); split(l, L, " "); split(h, H, " ")
    printf "  %-22s work (%s) %7.1f M instr\n", "none", fn, B[1] / 1e6
    printf "  %-22s work (%s) %7.1f M instr (%+.2f%%: the allocator wrappers)\n", "loaded, not started", fn, L[1] / 1e6, (L[1] / B[1] - 1) * 100
    printf "  %-22s work (%s) %7.1f M instr (%+.2f%%; sampling alone %+.2f%%)\n", "hearth heap, defaults", fn, H[1] / 1e6, (H[1] / B[1] - 1) * 100, (H[1] - L[1]) / B[1] * 100
    printf "  %-22s collector thread %.1f M instr: start-up CFI tables %.1f M, final flush %.1f M (symbolizing: libdw reading debug info)\n", "", H[2] / 1e6, H[3] / 1e6, H[4] / 1e6
    printf "  %-22s whole process %.1f M instr vs %.1f M (%+.1f%%)\n", "", H[5] / 1e6, B[5] / 1e6, (H[5] / B[5] - 1) * 100
  }'
}
imib=${INSTR_MIB:-1000}
cg_report "wl_heap mix ${imib} MiB on 2 threads" mix "$wl/wl_heap" 0 "$imib" mix
if command -v perl >/dev/null; then
  cg_report "perl, 1 round of the real program" perl_run perl "$tmp/hashes.pl" 1
fi
fi
fi
