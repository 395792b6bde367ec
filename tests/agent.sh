#!/usr/bin/env bash
# agent.sh: black-box tests of `hearth record` on the deterministic workloads
# of tests/agent/ (built by mk/agent.mk under $HEARTH_BUILD/workloads).
#
# Each workload burns a known CPU budget: func_a 70%, func_b 30%, both via
# spend() -> burn(), where burn() is a leaf without a frame. We check, from
# `hearth record --format folded --lines`:
#   - shares of func_a / func_b within +-5 points,
#   - every burn() sample has spend() as its caller (frameless leaf unwound),
#   - file:line of burn, spend and func_a match the LINE_* markers,
#   - names: demangled C++, symbols from a separate debug file, a shared
#     library; threads and a fork/exec child are followed.
# Needs perf_event_open (root in CI). cpu-clock counts the workload's CPU
# time, so the sample count does not depend on how busy the machine is.
set -u
cd "$(dirname "$0")/.."
BIN=${HEARTH_BIN:-build/hearth}
WL=${HEARTH_BUILD:-$PWD/build}/workloads
SECS=1.5
[ "${HEARTH_SANITIZE:-0}" = 1 ] && SECS=0.8
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0; fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }

line_of() { grep -n "$1" "tests/agent/$2" | head -1 | cut -d: -f1; }
L_BURN=$(line_of LINE_BURN spend.c)
L_SPEND=$(line_of LINE_SPEND spend.c)
L_FUNC_A=$(line_of LINE_FUNC_A shares.c)

# share NAME_REGEX FILE [WITHIN_REGEX]: percent of samples (of those matching WITHIN_REGEX) whose stack matches.
share() { awk -v re="$1" -v within="${3:-.}" '$0 ~ within {n=$NF; t+=n; if ($0 ~ re) a+=n} END {if (t == 0) print -1; else printf "%.1f\n", 100*a/t}' "$2"; }
total() { awk '{t+=$NF} END {print t+0}' "$1"; }
within() { awk -v v="$1" -v want="$2" 'BEGIN {d = v - want; if (d < 0) d = -d; exit !(d <= 5)}'; }

check_shares() { # NAME FILE A_RE B_RE [MIN_SAMPLES [WITHIN_RE]]
  local name=$1 f=$2 a b t
  t=$(total "$f")
  if [ "$t" -lt "${5:-300}" ]; then bad "$name: only $t samples"; return; fi
  a=$(share "$3" "$f" "${6:-.}"); b=$(share "$4" "$f" "${6:-.}")
  if within "$a" 70 && within "$b" 30; then ok "$name: shares a=$a% b=$b% ($t samples)"
  else bad "$name: shares a=$a% b=$b% (want 70/30 +-5; $t samples)"; fi
}

check_leaf() { # NAME FILE: burn's caller must be spend, at the right lines
  local name=$1 f=$2 all good
  all=$(awk '/burn \(spend.c/ {t+=$NF} END {print t+0}' "$f")
  good=$(awk -v re="spend \\\\(spend.c:$L_SPEND\\\\);burn \\\\(spend.c:$L_BURN\\\\)" '$0 ~ re {t+=$NF} END {print t+0}' "$f")
  if [ "$all" -gt 0 ] && [ $((good * 100)) -ge $((all * 95)) ]; then ok "$name: frameless leaf burn() under spend() at spend.c:$L_SPEND/$L_BURN ($good/$all)"
  else bad "$name: burn() under spend() with lines in $good of $all samples"; fi
}

record() { # NAME OUT ARGS...
  local name=$1 out=$2; shift 2
  if ! "$BIN" record --format folded --lines -o "$out" -- "$@" >"$TMP/$name.log" 2>&1; then
    bad "$name: hearth record failed: $(tail -2 "$TMP/$name.log")"; return 1
  fi
}

for v in fp nofp lib stripped; do
  f=$TMP/$v.folded
  record "$v" "$f" "$WL/shares_$v" $SECS || continue
  check_shares "$v" "$f" "func_a \\(shares.c:" "func_b \\(shares.c:"
  check_leaf "$v" "$f"
  if grep -q "func_a (shares.c:$L_FUNC_A);spend" "$f"; then ok "$v: func_a calls spend at shares.c:$L_FUNC_A"
  else bad "$v: no 'func_a (shares.c:$L_FUNC_A);spend' frame"; fi
done

# The shared library's frames are named and come from libshares.so.
if grep -q "spend (spend.c:$L_SPEND);burn" "$TMP/lib.folded" 2>/dev/null; then ok "lib: frames in libshares.so symbolized"
else bad "lib: no symbolized frames from libshares.so"; fi

# C++: demangled names through a class method and a template.
f=$TMP/cxx.folded
if record cxx "$f" "$WL/shares_cxx" $SECS; then
  check_shares cxx "$f" "work::Worker::run_a\\(int\\)" "work::Worker::run_b\\(int\\)"
  check_leaf cxx "$f"
  if grep -q "void work::spin<int>(int)" "$f"; then ok "cxx: template demangled"
  else bad "cxx: no 'void work::spin<int>(int)' frame"; fi
  if grep -q "_ZN" "$f"; then bad "cxx: mangled names left"; else ok "cxx: no mangled names"; fi
fi

# Many short-lived processes (each gone before most of its samples are read): a shell runs
# the workload 20 times for 1/20 of the budget each.
f=$TMP/short.folded
SHORT=$(awk -v s=$SECS 'BEGIN {printf "%.3f", s / 20}')
if "$BIN" record --format folded --lines -o "$f" -- sh -c "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do $WL/shares_nofp $SHORT; done" >"$TMP/short.log" 2>&1; then
  # of the workload's own time (main): 20 process starts (sh, ld.so) cost a few points of the total
  check_shares short-lived "$f" "func_a \\(shares.c:" "func_b \\(shares.c:" 300 "main \\(shares.c:"
  check_leaf short-lived "$f"
else bad "short-lived: $(tail -1 "$TMP/short.log")"; fi

# Threads and a fork/exec child.
for m in threads forkexec; do
  f=$TMP/$m.folded
  record "$m" "$f" "$WL/shares_nofp" $SECS $m || continue
  check_shares "$m" "$f" "func_a \\(shares.c:" "func_b \\(shares.c:"
  check_leaf "$m" "$f"
done

# Kernel frames: a syscall loop spends most of its time in the kernel, on top of func_sys.
f=$TMP/sys.folded
if record syscalls "$f" "$WL/shares_fp" 0.5 syscalls; then
  k=$(share "func_sys \\(shares.c:[0-9]+\\);.*;(entry_SYSCALL[_a-z0-9]*|do_syscall_64);" "$f")
  if awk -v k="$k" 'BEGIN {exit !(k >= 30)}' && grep -q "getppid" "$f"; then ok "kernel: ${k}% of samples in the kernel above func_sys (getppid named)"
  else bad "kernel: only ${k}% of samples show kernel frames above func_sys"; fi
fi

# A process in its own mount namespace (as in a container): its binary exists only there,
# so it can only be read through /proc/PID/root.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  mkdir -p "$TMP/hidden"
  f=$TMP/ns.folded
  if record mountns "$f" unshare --mount --propagation private sh -c \
      "mount -t tmpfs none '$TMP/hidden' && cp '$WL/shares_nofp' '$TMP/hidden/' && exec '$TMP/hidden/shares_nofp' $SECS"; then
    if [ -e "$TMP/hidden/shares_nofp" ]; then bad "mountns: the binary is visible outside its namespace (test is void)"
    else check_shares mountns "$f" "func_a \\(shares.c:" "func_b \\(shares.c:"; fi
  fi
fi

# vDSO: a clock_gettime(CLOCK_MONOTONIC) loop runs in the vDSO, which has no file: its frames
# are named from our own copy of the (shared) vDSO image.
f=$TMP/vdso.folded
if record vdso "$f" "$WL/shares_fp" 0.5 vdso; then
  v=$(share "func_vdso \\(shares.c:[0-9]+\\);.*(__vdso_clock_gettime|do_hres|vdso)" "$f")
  if awk -v v="$v" 'BEGIN {exit !(v >= 30)}'; then ok "vdso: ${v}% of samples in named vDSO frames"
  else bad "vdso: only ${v}% of samples in named vDSO frames"; fi
fi

# JIT: generated code in an anonymous mapping, named by /tmp/perf-PID.map (70% of the time).
f=$TMP/jit.folded
if record jit "$f" "$WL/jit" $SECS; then
  check_shares jit "$f" ";jit_hot_loop( |;)" "native_work"
fi

# The other writers: SVG flame graph and speedscope JSON name the workload's functions.
for fmt in svg speedscope; do
  if "$BIN" record --format $fmt -o "$TMP/r.$fmt" -- "$WL/shares_fp" 0.3 >"$TMP/$fmt.log" 2>&1 && grep -q "func_a" "$TMP/r.$fmt" &&
     head -c 300 "$TMP/r.$fmt" | grep -q "$([ $fmt = svg ] && echo '<svg' || echo 'speedscope')"; then ok "$fmt output names func_a"
  else bad "$fmt output: $(tail -1 "$TMP/$fmt.log")"; fi
done

# Hardware cycles where there is a PMU, else a note and cpu-clock: samples either way.
if "$BIN" record --event cycles --format folded -o "$TMP/cy.folded" -- "$WL/shares_fp" 0.3 >"$TMP/cy.log" 2>&1 &&
   [ "$(total "$TMP/cy.folded")" -gt 100 ]; then
  if grep -q "no hardware cycles" "$TMP/cy.log"; then ok "event: cycles fell back to cpu-clock with a note"
  else ok "event: cycles sampled"; fi
else bad "event cycles: $(tail -1 "$TMP/cy.log")"; fi

# Without DWARF unwinding, a frame-pointer unwinder loses spend() under the frameless
# burn(): the leaf check must see that (this proves the check can fail).
f=$TMP/nodwarf.folded
if "$BIN" record --no-dwarf --format folded --lines -o "$f" -- "$WL/shares_fp" 0.5 >/dev/null 2>&1 &&
   [ "$(total "$f")" -gt 100 ] && ! grep -q "spend (spend.c:$L_SPEND);burn" "$f" && grep -q "func_a (shares.c:$L_FUNC_A);burn" "$f"; then
  ok "no-dwarf: frame pointers alone skip spend() (func_a;burn), as expected"
else bad "no-dwarf: frame-pointer-only stacks did not show the known frameless-leaf error"; fi

# pprof output is a real pprof: gzip, and it names the workload's functions.
if "$BIN" record -o "$TMP/p.pb.gz" -- "$WL/shares_fp" 0.3 >"$TMP/p.log" 2>&1 && gzip -t "$TMP/p.pb.gz" &&
   zcat "$TMP/p.pb.gz" | grep -aq func_a; then ok "pprof: gzip pprof with func_a"
else bad "pprof: $(tail -1 "$TMP/p.log")"; fi
if [ -x "$BIN" ] && "$BIN" convert --help >/dev/null 2>&1; then
  if "$BIN" convert "$TMP/p.pb.gz" --to folded --type samples -o "$TMP/p.folded" >/dev/null 2>&1 && grep -q "func_a;spend;burn" "$TMP/p.folded"; then
    ok "pprof: hearth convert reads it back (func_a;spend;burn)"
  else bad "pprof: hearth convert could not read it back"; fi
fi

# Attaching to a running process.
# Whole-host sampling counts wall time on each CPU, so on a loaded machine the
# workload gets fewer samples than its CPU budget: shares are checked on what came.
"$WL/shares_fp" 4 & wpid=$!
sleep 0.2
if "$BIN" record --pid $wpid --duration 2s --format folded --lines -o "$TMP/pid.folded" >"$TMP/pid.log" 2>&1; then
  check_shares pid "$TMP/pid.folded" "func_a \\(shares.c:" "func_b \\(shares.c:" 100
  check_leaf pid "$TMP/pid.folded"
else bad "pid: $(tail -1 "$TMP/pid.log")"; fi
kill $wpid 2>/dev/null; wait $wpid 2>/dev/null

# Without privileges (perf_event_paranoid 2, no CAP_PERFMON): one's own command is
# profiled in user space with a note; another process is refused with what to change.
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null && [ "$(cat /proc/sys/kernel/perf_event_paranoid)" -ge 2 ]; then
  NOBODY="setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all"
  chmod o+rx "$TMP"; mkdir -m 1777 "$TMP/nobody"
  if $NOBODY "$BIN" record --format folded --lines -o "$TMP/nobody/out.folded" -- "$WL/shares_fp" 0.5 >"$TMP/nobody.log" 2>&1 &&
     grep -q "kernel stacks are not allowed" "$TMP/nobody.log"; then
    check_shares unprivileged "$TMP/nobody/out.folded" "func_a \\(shares.c:" "func_b \\(shares.c:" 200
  else bad "unprivileged record: $(tail -2 "$TMP/nobody.log")"; fi
  out=$($NOBODY "$BIN" record --pid 1 --duration 0.2s -o "$TMP/x" 2>&1); rc=$?
  if [ $rc -ne 0 ] && echo "$out" | grep -q "perf_event_paranoid" && echo "$out" | grep -q "CAP_PERFMON"; then ok "unprivileged --pid: says what to change"
  else bad "unprivileged --pid gave rc=$rc: $out"; fi
fi

# A binary replaced on disk while it runs (a deploy): its path now names another file, so the
# mapped one is read through /proc/PID/map_files.
cp "$WL/shares_nofp" "$TMP/replaced"
"$TMP/replaced" 4 & rpid=$!
sleep 0.2
rm -f "$TMP/replaced"; cp "$WL/shares_cxx" "$TMP/replaced"
if "$BIN" record --pid $rpid --duration 2s --format folded --lines -o "$TMP/replaced.folded" >"$TMP/replaced.log" 2>&1; then
  check_shares replaced "$TMP/replaced.folded" "func_a \\(shares.c:" "func_b \\(shares.c:" 100
else bad "replaced: $(tail -1 "$TMP/replaced.log")"; fi
kill $rpid 2>/dev/null; wait $rpid 2>/dev/null

# Errors say what is wrong.
out=$("$BIN" record -o "$TMP/x" -- /nonexistent/cmd 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "cannot run '/nonexistent/cmd'"; then ok "error: missing command"
else bad "error: missing command gave rc=$rc: $out"; fi
out=$("$BIN" record --pid 999999999 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -qi "not a process id\|does not exist"; then ok "error: bad pid"
else bad "error: bad pid gave rc=$rc: $out"; fi
out=$("$BIN" record --rate abc -- true 2>&1); rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -q "rate"; then ok "error: bad rate"
else bad "error: bad rate gave rc=$rc: $out"; fi
out=$("$BIN" record --format nope -- true 2>&1); rc=$?
if [ $rc -eq 2 ] && echo "$out" | grep -q "unknown format"; then ok "error: bad format"
else bad "error: bad format gave rc=$rc: $out"; fi

echo "$pass passed, $fail failed"
