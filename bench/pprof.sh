#!/usr/bin/env bash
# pprof decode vs merely gunzipping the same file (issue 2 target: decode into
# the model in at most 1.5x the gunzip time). Everything is measured in this
# run, side by side: zlib's inflate (in process: the issue's peer),
# gz_decompress (libdeflate, what pprof_decode calls), libdeflate directly,
# pprof_decode, and `gzip -dc` on the command line as the peer a user knows.
# Usage: bench/pprof.sh [FILE] [ROUNDS]
set -eu
cd "$(dirname "$0")/.."
file=${1:-${HEARTH_TESTDATA:-../shared/testdata}/pprof/go-large.cpu.pb.gz}
rounds=${2:-30}
[ -f "$file" ] || { echo "bench pprof: missing $file" >&2; exit 1; }
make --no-print-directory -s build/bench/pprof_bench >/dev/null
echo "-- default malloc (each decode gets fresh pages from the kernel)"
build/bench/pprof_bench "$file" "$rounds"
# A long-running server keeps its heap between requests; glibc's defaults
# hand large freed blocks back to the kernel, so every decode page-faults its
# tables in again. The same run with freed memory kept:
echo "-- malloc keeping freed memory (GLIBC_TUNABLES mmap_threshold=256MiB, trim_threshold=1GiB)"
GLIBC_TUNABLES=glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824 \
  build/bench/pprof_bench "$file" "$rounds"

# The command-line peer: the mean of N runs of gzip -dc (process start included).
t0=$(date +%s%N)
for _ in $(seq "$rounds"); do gzip -dc "$file" >/dev/null; done
t1=$(date +%s%N)
awk -v ns=$((t1 - t0)) -v n="$rounds" 'BEGIN { printf "gzip -dc (command line, mean)  %8.2f ms   (includes process start)\n", ns / n / 1e6 }'
