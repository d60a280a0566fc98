#!/usr/bin/env bash
# Builds mca-convert and runs every test: GoogleTest (ctest), the Python interop tests (pytest)
# against that build, then the unit tests again under AddressSanitizer + UBSan.
# This is what CI (.ci/run) runs after installing dependencies. A failed build stops the run; a
# failed test stage is recorded and the later stages still run, so one run shows every failure.
# Exits non-zero if anything failed.
#
#   tools/test-all.sh            # everything
#   tools/test-all.sh --no-asan  # skip the sanitizer build (quicker local runs)
#
# Environment: MCACONV_JOBS (default 2) parallel compile/test jobs; MCACONV_BUILD_DIR (default
# build) and MCACONV_ASAN_BUILD_DIR (default build-asan) build directories.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${MCACONV_JOBS:-2}"
build_dir="${MCACONV_BUILD_DIR:-build}"
asan_dir="${MCACONV_ASAN_BUILD_DIR:-build-asan}"
run_asan=1
for arg in "$@"; do
  case "$arg" in
    --no-asan) run_asan=0 ;;
    *) echo "usage: $0 [--no-asan]" >&2; exit 2 ;;
  esac
done

banner() {
  printf '\n==================== %s ====================\n' "$*"
}

build() {  # build DIR [cmake args...]
  local dir="$1"
  shift
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMCACONV_BUILD_TESTS=ON "$@"
  ninja -C "$dir" -j "$jobs"
}

unit_tests() {  # unit_tests DIR
  ctest --test-dir "$1" --output-on-failure --no-tests=error -j "$jobs"
}

failed=()
stage() {  # stage NAME COMMAND...: runs a test stage, recording a failure instead of exiting
  local name="$1" rc=0
  shift
  "$@" || rc=$?
  [ "$rc" -eq 0 ] || failed+=("$name (exit $rc)")
}

pytest_all() {
  local rc=0
  MCACONV_BUILD_DIR="$build_dir" python3 -m pytest tests/python -q || rc=$?
  # 5 is pytest's "no tests collected": never expected here, so a broken test tree.
  [ "$rc" -ne 5 ] || echo "pytest ran no tests (none collected, or all deselected)" >&2
  return "$rc"
}

asan_unit_tests() {
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" unit_tests "$asan_dir"
}

start=$SECONDS

banner "build (RelWithDebInfo) into $build_dir/"
build "$build_dir"

banner "C++ unit tests (ctest, $build_dir/)"
stage "ctest ($build_dir)" unit_tests "$build_dir"

banner "Python interop tests (pytest, MCACONV_BUILD_DIR=$build_dir)"
stage "pytest" pytest_all

if [ "$run_asan" -eq 1 ]; then
  banner "sanitizer build (ASan + UBSan) into $asan_dir/"
  build "$asan_dir" -DMCACONV_SANITIZE=ON

  banner "C++ unit tests under ASan + UBSan (ctest, $asan_dir/)"
  stage "ctest under sanitizers ($asan_dir)" asan_unit_tests
fi

if [ ${#failed[@]} -gt 0 ]; then
  banner "FAILED after $((SECONDS - start)) s: ${failed[*]}"
  exit 1
fi
banner "all tests passed ($((SECONDS - start)) s)"
