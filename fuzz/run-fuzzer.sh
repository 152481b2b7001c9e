#!/bin/sh
# Runs one libFuzzer target for a fixed time over a scratch copy of its
# checked-in seed corpus (so that the repository is never modified), then
# prints one summary line with the number of executions.
#
# Usage: run-fuzzer.sh FUZZER SEED_DIR SECONDS [STATS_FILE] [-- extra flags]
# On a crash the reproducer is copied next to STATS_FILE (or into the current
# directory) and the fuzzer's log is shown.
set -eu
fuzzer=$1 seeds=$2 secs=$3
stats=${4:-}
shift 3
[ $# -gt 0 ] && [ "$1" != -- ] && shift
[ $# -gt 0 ] && [ "$1" = -- ] && shift

name=$(basename "$fuzzer")
work=$(mktemp -d "${TMPDIR:-/tmp}/fq-fuzz-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cp "$seeds"/* "$work/corpus/"
nseed=$(ls "$work/corpus" | wc -l)

rc=0
"$fuzzer" -max_total_time="$secs" -print_final_stats=1 -timeout=30 \
    -artifact_prefix="$work/" "$@" "$work/corpus" >"$work/log" 2>&1 || rc=$?

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
ncorp=$(ls "$work/corpus" | wc -l)
line="fuzz $name: ${execs:-?} executions in ${secs} s, corpus $nseed -> $ncorp inputs, exit $rc"
echo "$line"
[ -n "$stats" ] && echo "$line" >"$stats"
if [ "$rc" -ne 0 ] || [ -z "$execs" ]; then
    tail -n 60 "$work/log"
    dest=$(dirname "${stats:-./x}")
    for a in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
        [ -e "$a" ] || continue
        cp "$a" "$dest/" && echo "reproducer: $dest/$(basename "$a")"
        od -A d -t x1 "$a" | head -20
    done
    exit 1
fi
