#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]: build the libFuzzer
# targets with clang-19 in build-fuzz (GRADC_FUZZ=ON: ASan, UBSan, the IR
# verifier) and run each for SECONDS_PER_TARGET (default 60) seconds, one
# after another, on a copy of its seed corpus (tests/fuzz/corpus/<target>,
# which stays as it is). Targets: frontend safetensors csv idx npy text
# (default: all). Exits 1 if any target found a crash, a leak, a timeout or
# an out-of-memory, printing the reproducer's path; a reproducer reruns with
#   build-fuzz/fuzz/fuzz_<target> <reproducer>
# Environment: GRADC_FUZZ_BUILD (the build directory, default build-fuzz),
# GRADC_FUZZ_JOBS (build jobs, default 2), GRADC_FUZZ_OUT (where the
# corpus copies and reproducers go, default build-fuzz/run).
# See docs/testing.md, "Fuzzing".
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-60}
[ $# -gt 0 ] && shift
all="frontend safetensors csv idx npy text"
targets=${*:-$all}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2; exit 2 ;; esac
for t in $targets; do
  case " $all " in
    *" $t "*) ;;
    *) echo "$0: unknown target '$t' (targets: $all)" >&2; exit 2 ;;
  esac
done

build=${GRADC_FUZZ_BUILD:-$root/build-fuzz}
out=${GRADC_FUZZ_OUT:-$build/run}
# -O1: libFuzzer needs speed; Debug keeps the IR verifier between passes.
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang-19 -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_C_FLAGS_DEBUG="-g -O1" -DGRADC_FUZZ=ON >/dev/null
cmake --build "$build" -j"${GRADC_FUZZ_JOBS:-2}" --target fuzz >/dev/null

# A hang is a failure (-timeout, seconds per input; generous, as the machine
# may be busy); so is a leak (ASan's
# LeakSanitizer), any UBSan report (built not to recover) and using more
# than 2 GB (-rss_limit_mb, also the limit of a single malloc).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1
failed=0
printf '%-12s %8s %12s %8s  %s\n' target seconds executions corpus result
for t in $targets; do
  dir=$out/$t
  rm -rf "$dir"
  mkdir -p "$dir/corpus" "$dir/crashes"
  cp "$root/tests/fuzz/corpus/$t"/* "$dir/corpus/"
  dict=()
  [ -f "$root/tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
  start=$(date +%s)
  rc=0
  "$build/fuzz/fuzz_$t" "${dict[@]}" -max_total_time="$secs" -max_len=4096 -timeout=30 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$dir/crashes/" \
    "$dir/corpus" >"$dir/log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  ncorpus=$(find "$dir/corpus" -type f | wc -l)
  # A slow unit (over 10 s) is noted, not failed: a busy machine makes them.
  found=$(find "$dir/crashes" -type f ! -name 'slow-unit-*' | sort)
  slow=$(find "$dir/crashes" -type f -name 'slow-unit-*' | sort)
  if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
    failed=1
    printf '%-12s %8s %12s %8s  %s\n' "$t" $(( $(date +%s) - start )) "${execs:-?}" "$ncorpus" \
      "FAILED (exit $rc, log $dir/log)"
    grep -m1 -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error)' "$dir/log" || true
    for f in $found; do echo "  reproducer: $f"; done
  else
    printf '%-12s %8s %12s %8s  %s\n' "$t" $(( $(date +%s) - start )) "${execs:-?}" "$ncorpus" ok
  fi
  for f in $slow; do echo "  slow unit (not a failure; rerun it to time it): $f"; done
done
exit $failed
