#!/usr/bin/env bash
# Builds forkqueue and runs every test: the normal build (C, Python, examples),
# the C tests again under ASan+UBSan, then the checks that need clang
# (fuzzing). Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=$(python3 -c 'import sys; print(sys.executable)')
JOBS=$(nproc)
CTEST="ctest --output-on-failure --no-tests=error -j $JOBS"

# clang when there is one: its UBSan also checks indexing through pointer
# arithmetic (p = a + i past the end of a[]), which gcc's does not.
ASAN_CC=()
if command -v clang >/dev/null; then
    ASAN_CC=(-DCMAKE_C_COMPILER=clang)
fi
echo "=== ASan+UBSan build: C tests ==="
cmake -S . -B build-asan -G Ninja -DFQ_SANITIZE=ON -DFQ_BUILD_PYTHON=OFF \
    -DFQ_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug "${ASAN_CC[@]}" >/dev/null
cmake --build build-asan
$CTEST --test-dir build-asan -L c

if command -v clang >/dev/null; then
    echo "=== clang build: fuzz targets ==="
    cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang -DFQ_BUILD_FUZZ=ON \
        -DFQ_BUILD_PYTHON=OFF -DFQ_BUILD_BENCH=OFF -DFQ_BUILD_EXAMPLES=OFF \
        -DFQ_BUILD_TESTS=OFF >/dev/null
    cmake --build build-fuzz
    $CTEST --test-dir build-fuzz -L fuzz
fi

echo "=== main build: all tests ==="
cmake -S . -B build -G Ninja -DPython3_EXECUTABLE="$PY" >/dev/null
cmake --build build
$CTEST --test-dir build
