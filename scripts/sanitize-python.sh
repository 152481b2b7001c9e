#!/usr/bin/env bash
# Runs Python tests against an extension built with a sanitizer, loaded
# into the stock interpreter with LD_PRELOAD (CPython itself is not
# instrumented: the checks cover the extension and the core it links).
#
#   scripts/sanitize-python.sh asan|tsan [TEST_FILE...]
#
# Default files: the ones whose jobs, drivers or waits run in threads. A
# report of any process (workers included) goes to $OUT/<file>/<kind>.<pid>;
# the script fails if a test fails or any report was written.
#   asan: ASan+UBSan (FQ_SANITIZE). use_sigaltstack=0: CPython ends daemon
#     threads with pthread_exit() at interpreter exit, which leaves their
#     stacks poisoned; ASan's own thread teardown then reports a false
#     stack-buffer-underflow in sigaltstack().
#   tsan: the extension and the core built with -fsanitize=thread; the GIL
#     and every lock are pthread calls, which TSan intercepts.
set -euo pipefail
cd "$(dirname "$0")/.."
KIND=${1:?usage: $0 asan|tsan [TEST_FILE...]}
shift
PY=$(python3 -c 'import sys; print(sys.executable)')
BUILD=build-py$KIND
OUT=${OUT:-$PWD/$BUILD/reports}
COMMON=(-G Ninja -DFQ_BUILD_TESTS=OFF -DFQ_BUILD_BENCH=OFF
        -DFQ_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Debug
        -DPython3_EXECUTABLE="$PY")
case $KIND in
asan)
    cmake -S . -B "$BUILD" "${COMMON[@]}" -DFQ_SANITIZE=ON >/dev/null
    PRELOAD=$(gcc -print-file-name=libasan.so)
    OPTS_VAR=ASAN_OPTIONS
    OPTS="detect_leaks=0:use_sigaltstack=0"
    ;;
tsan)
    cmake -S . -B "$BUILD" "${COMMON[@]}" \
        "-DCMAKE_C_FLAGS=-fsanitize=thread -O1 -g" \
        "-DCMAKE_MODULE_LINKER_FLAGS=-fsanitize=thread" \
        "-DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread" \
        "-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread" >/dev/null
    PRELOAD=$(gcc -print-file-name=libtsan.so)
    OPTS_VAR=TSAN_OPTIONS
    OPTS="halt_on_error=0:report_signal_unsafe=0:die_after_fork=0"
    ;;
*)
    echo "unknown kind: $KIND (asan or tsan)" >&2
    exit 2
    ;;
esac
cmake --build "$BUILD"
if [ $# -eq 0 ]; then
    set -- test_forkqueue_thread_kind.py test_executor_wakeup.py \
        test_futures_thread.py test_workers_thread.py test_forkqueue_job.py \
        test_forkqueue_loop.py test_forkqueue_engine.py test_differences.py \
        test_executor.py test_channels_exchange.py test_lazy.py
fi
rm -rf "$OUT"
status=0
cd test/python
for f in "$@"; do
    f=$(basename "$f")
    mkdir -p "$OUT/${f%.py}"
    if ! env LD_PRELOAD="$PRELOAD" "$OPTS_VAR=$OPTS:log_path=$OUT/${f%.py}/$KIND" \
        PYTHONPATH="$PWD/../../$BUILD/python" PYTHONDONTWRITEBYTECODE=1 \
        "$PY" -m pytest -q -p no:cacheprovider "$f" >"$OUT/${f%.py}.log" 2>&1; then
        echo "FAILED: $f (log: $OUT/${f%.py}.log)"
        status=1
    fi
    reports=$(find "$OUT/${f%.py}" -type f | wc -l)
    echo "$f: $(tail -1 "$OUT/${f%.py}.log"); $reports report(s)"
    if [ "$reports" -gt 0 ]; then
        status=1
    fi
done
exit $status
