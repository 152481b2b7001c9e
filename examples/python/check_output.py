"""Runs an example script and checks that its output is exactly as expected.

usage: check_output.py SCRIPT EXPECTED_FILE

The script runs with this interpreter (and its environment, so PYTHONPATH
reaches the freshly built package). Fails on any difference in stdout, on
anything written to stderr, and on a non-zero exit status.

An example whose users see something on stderr (a failed worker's
traceback) has NAME.stderr beside NAME.expected: stderr must match it line
by line, where a line "..." stands for any number of lines (the traceback's
frames, which name files of this machine).
"""
import difflib
import re
import subprocess
import sys


def stderr_pattern(text: str) -> "re.Pattern[str]":
    parts = []
    for line in text.splitlines(True):
        if line.rstrip("\n") == "...":
            parts.append(r"(?:.*\n)*?")
        else:
            parts.append(re.escape(line))
    return re.compile("".join(parts))


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
    err_file = expected_file[:-len(".expected")] + ".stderr"
    try:
        with open(err_file, encoding="utf-8") as f:
            err_expected = f.read()
    except FileNotFoundError:
        err_expected = None
    if err_expected is None and proc.stderr:
        print(f"{script}: unexpected stderr:\n{proc.stderr}")
        ok = False
    elif err_expected is not None and \
            not stderr_pattern(err_expected).fullmatch(proc.stderr):
        print(f"{script}: stderr does not match {err_file}:\n{proc.stderr}")
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
