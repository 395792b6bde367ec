#!/usr/bin/env bash
# store_db.sh: `hearth db verify|stats|compact` on a real data directory
# (made by bench/store_bench with a small dataset), before and after a byte
# flip, plus usage errors. Ends with "N passed, N failed".
set -u
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { local name=$1; shift; if "$@"; then ok "$name"; else bad "$name"; fi; }
BIN=${HEARTH_BIN:-build/hearth}
BENCH=${HEARTH_BUILD:-build}/bench/store_bench
export POOL_PPROF=${HEARTH_TESTDATA:-../shared/testdata}/pprof/go-sample.cpu.pb.gz
dir=$(mktemp -d /tmp/hearth-store-db.XXXXXX)
trap 'rm -rf "$dir"' EXIT

if ! BENCH_NO_GZ=1 "$BENCH" ingest "$dir/data" --hours 1 --services 2 --samples 40 >"$dir/ingest.log" 2>&1; then
  cat "$dir/ingest.log"; bad "make a data directory"; echo "$pass passed, $fail failed"; exit 1
fi
"$BIN" db verify "$dir/data" >"$dir/v1" 2>&1; rc=$?
check "verify clean exits 0" [ "$rc" -eq 0 ]
check "verify reports 0 problems" grep -q " 0 problems" "$dir/v1"
"$BIN" db stats "$dir/data" >"$dir/s1" 2>&1; rc=$?
check "stats exits 0" [ "$rc" -eq 0 ]
check "stats shows one block of 2 services x 2 types" grep -q "blocks 1 (damaged 0), series 4, profiles 1440" "$dir/s1"
check "stats shows bytes by table" grep -q "bytes: index [0-9]*, symbols [0-9]*, samples [0-9]*" "$dir/s1"

# Flip one byte in the middle of the samples file.
smp=$(find "$dir/data/tenants" -name samples | head -n 1)
size=$(stat -c %s "$smp")
printf '\xff' | dd of="$smp" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
"$BIN" db verify "$dir/data" >"$dir/v2" 2>&1; rc=$?
check "verify of a flipped byte exits 1" [ "$rc" -eq 1 ]
check "verify names the damaged file" grep -q "DAMAGED .*samples.*checksum" "$dir/v2"
"$BIN" db stats "$dir/data" >"$dir/s2" 2>&1
check "stats lists the damaged block" grep -q "damaged 1" "$dir/s2"
"$BIN" db compact "$dir/data" >"$dir/c1" 2>&1; rc=$?
check "compact skips the damaged block and exits 0" [ "$rc" -eq 0 ]

"$BIN" db >/dev/null 2>&1; rc=$?
check "db without a subcommand is a usage error" [ "$rc" -eq 2 ]
"$BIN" db verify >/dev/null 2>&1; rc=$?
check "verify without DIR is a usage error" [ "$rc" -eq 2 ]
"$BIN" db frob "$dir" >"$dir/u" 2>&1; rc=$?
check "unknown subcommand is a usage error" [ "$rc" -eq 2 ]
"$BIN" db verify "$dir/nope" >"$dir/n" 2>&1; rc=$?
check "verify of a missing directory fails with a message" grep -q "not a directory" "$dir/n"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
