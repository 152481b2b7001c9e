"""Runs an example script and checks that its output is exactly as expected.

usage: check_output.py SCRIPT EXPECTED_FILE

The script runs with this interpreter (and its environment, so PYTHONPATH
reaches the freshly built package). Fails on any difference in stdout, on
anything written to stderr, and on a non-zero exit status.
"""
import difflib
import subprocess
import sys


def main() -> int:
    script, expected_file = sys.argv[1], sys.argv[2]
    with open(expected_file, encoding="utf-8") as f:
        expected = f.read()
    proc = subprocess.run([sys.executable, script], capture_output=True,
                          text=True, timeout=50)
    ok = True
    if proc.returncode != 0:
        print(f"{script}: exit status {proc.returncode}")
        ok = False
    if proc.stderr:
        print(f"{script}: unexpected stderr:\n{proc.stderr}")
        ok = False
    if proc.stdout != expected:
        print(f"{script}: output differs from {expected_file}:")
        sys.stdout.writelines(difflib.unified_diff(
            expected.splitlines(True), proc.stdout.splitlines(True),
            "expected", "actual"))
        ok = False
    if ok:
        print(f"{script}: output as expected ({len(expected.splitlines())} "
              "lines)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
