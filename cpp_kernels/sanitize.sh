#!/usr/bin/env bash
# sanitize.sh (`make sanitize`): the kernels under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# 1. Builds a second copy of the module with -DLLMFS_SANITIZE=ON (-fsanitize=address,undefined,
#    -fno-sanitize-recover) into build/sanitize; the normal install is left alone.
# 2. Runs the kernel tests (tests/test_kernels*.py) against it, with libasan preloaded into
#    Python (leak checking off: the interpreter itself leaks by design) and libstdc++ too
#    (ASan can only intercept C++ throws when libstdc++ is loaded at start-up).
# 3. Builds and runs cpp_kernels/tests/portable.cpp with the same sanitizers, with and
#    without x86 code.
# Any sanitizer report aborts the run and makes this script fail.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
BUILD=build/sanitize
CXX=${CXX:-g++}

echo "== building the sanitized module in $BUILD"
generator=()
command -v ninja > /dev/null && generator=(-G Ninja)
cmake -S cpp_kernels -B "$BUILD" "${generator[@]}" -DLLMFS_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug \
    -DPython_EXECUTABLE="$(realpath "$PY")" -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" > "$BUILD.log" 2>&1 \
    || { cat "$BUILD.log"; exit 1; }
cmake --build "$BUILD" -j 2 >> "$BUILD.log" 2>&1 || { cat "$BUILD.log"; exit 1; }
module=$(ls "$BUILD"/_kernels*.so)

export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT

echo "== kernel tests against $module"
set +e
LD_PRELOAD="$($CXX -print-file-name=libasan.so) $($CXX -print-file-name=libstdc++.so)" LLMFS_SANITIZED_MODULE="$module" \
    PYTHONPATH="cpp_kernels/tests${PYTHONPATH:+:$PYTHONPATH}" \
    "$PY" -m pytest -p no:langsmith_plugin -p sanitize_plugin -q tests/test_kernels.py tests/test_kernels_fuzz.py 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ] || grep -qE "ERROR: AddressSanitizer|runtime error:" "$log"; then
    echo "sanitize: FAILED (exit $status)"; exit 1
fi

for mode in "-DLLMFS_NO_X86" ""; do
    echo "== portable.cpp ${mode:-(x86 dispatch)} under the sanitizers"
    exe="$BUILD/portable${mode:+_nox86}"
    $CXX -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all $mode -I cpp_kernels/src \
        cpp_kernels/tests/portable.cpp -o "$exe" -pthread
    "$exe"
done
echo "sanitize: clean"
