#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Runs pytap's coverage-guided fuzz targets (cargo-fuzz, libFuzzer) for
# SECONDS each (default 600), on stable Rust: `-s none` skips the sanitizer
# that would need nightly; libFuzzer's coverage instrumentation and Rust's
# own panics/overflow checks (debug assertions are on) still apply.
# Seeds come from fuzz/seeds/TARGET (real CPython notes and headers); the
# growing corpus lives in fuzz/corpus/TARGET, crashes in fuzz/artifacts/.
# Needs: cargo install cargo-fuzz; a C++ compiler for libFuzzer (g++).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(elf_image stapsdt_notes arg_specs event_decode script_parse capture_ring recording_read btf linetable)
for t in "${targets[@]}"; do
  corpus=$PWD/corpus/$t   # absolute: libFuzzer does not run in this directory
  mkdir -p "$corpus"
  [ -d "seeds/$t" ] && cp -n seeds/"$t"/* "$corpus/" 2>/dev/null || true
  echo "== fuzzing $t for ${secs}s"
  cargo +stable fuzz run -s none --debug-assertions "$t" "$corpus" -- \
    -max_total_time="$secs" -max_len=262144 -print_final_stats=1 2>&1 | tail -n 12
done
