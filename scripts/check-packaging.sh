#!/usr/bin/env bash
# Builds the Python wheel and sdist of this tree, installs each into a fresh
# virtual environment, and runs the Python tests there against the installed
# package (not the build tree). Needs scikit-build-core and build in the
# interpreter given as $1 (default python3); see scripts/setup.sh.
# The venvs see that interpreter's packages (pytest, mypy) but not its path
# to the build tree: PYTHONPATH is cleared.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
SRC=$PWD
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
unset PYTHONPATH

# Build from a clean export of the tree so that a local build/ never leaks in.
git ls-files -z --cached --others --exclude-standard |
    tar --null -T - -cf - | (mkdir "$TMP/src" && tar -xf - -C "$TMP/src")
cd "$TMP/src"
export CMAKE_BUILD_PARALLEL_LEVEL=2
"$PY" -m build --no-isolation --sdist --outdir "$TMP/dist" . >"$TMP/sdist.log" 2>&1 ||
    { cat "$TMP/sdist.log"; exit 1; }
"$PY" -m pip wheel --no-build-isolation --no-deps -q -w "$TMP/dist" . \
    >"$TMP/wheel.log" 2>&1 || { cat "$TMP/wheel.log"; exit 1; }
ls "$TMP/dist"
WHEEL=$(ls "$TMP"/dist/*.whl)
SDIST=$(ls "$TMP"/dist/*.tar.gz)

# What the distributions must hold.
"$PY" - "$WHEEL" "$SDIST" <<'PYEOF'
import sys, tarfile, zipfile
whl, sdist = sys.argv[1], sys.argv[2]
names = zipfile.ZipFile(whl).namelist()
for need in ("forkqueue/__init__.py", "forkqueue/__init__.pyi",
             "forkqueue/_forkqueue.pyi", "forkqueue/py.typed",
             "forkqueue/_progress.py"):
    assert need in names, (need, names)
assert any(n.startswith("forkqueue/_forkqueue.") and n.endswith(".so")
           for n in names), names
meta = [n for n in names if n.endswith("METADATA")][0]
text = zipfile.ZipFile(whl).read(meta).decode()
assert "Name: forkqueue-py" in text, text[:300]
assert any(n.endswith("LICENSE") for n in names), names
members = tarfile.open(sdist).getnames()
for need in ("LICENSE", "pyproject.toml", "include/forkqueue.h", "include/fq/loop.h",
             "python/src/core/core.h"):
    assert any(m.endswith("/" + need) for m in members), need
print("contents ok")
PYEOF

# Every module of the installed package imports (all faces), then tests.
IMPORT_ALL='
import importlib, os, pkgutil, forkqueue
assert "site-packages" in forkqueue.__file__, forkqueue.__file__
for m in pkgutil.walk_packages(forkqueue.__path__, "forkqueue."):
    if not m.name.rsplit(".", 1)[-1].startswith("_"):  # public modules
        importlib.import_module(m.name)
print("imported", forkqueue.__file__)'

# The ForkQueue face's tests, one pytest process per file as ctest runs
# them (a file's leftovers never reach the next). The other faces' tests
# run from the build tree; here every module of theirs must import.
FQ_TESTS="test_api.py test_batching.py test_differences.py test_errors.py
          test_module.py test_forkqueue_*.py"

run_tests() { # $1: venv dir, $2: name
    local venv=$1 name=$2
    mkdir -p "$TMP/t-$name/test"
    cp -r "$SRC/test/python" "$TMP/t-$name/test/"
    cp -r "$SRC/examples" "$TMP/t-$name/"
    cd "$TMP/t-$name/test/python"
    "$venv/bin/python" -c "$IMPORT_ALL"
    local f
    for f in $FQ_TESTS; do
        if "$venv/bin/python" -m pytest -q -p no:cacheprovider "$f" \
            >"$TMP/out" 2>&1; then
            echo "$f: $(tail -1 "$TMP/out")"
        else
            cat "$TMP/out"
            echo "FAILED in the $name venv: $f"
            exit 1
        fi
    done
    cd "$SRC"
}

for kind in wheel sdist; do
    echo "=== install the $kind into a fresh venv and test it"
    "$PY" -m venv --system-site-packages "$TMP/venv-$kind"
    if [ "$kind" = wheel ]; then ART=$WHEEL; else ART=$SDIST; fi
    "$TMP/venv-$kind/bin/python" -m pip install -q --no-build-isolation \
        --no-deps "$ART" >"$TMP/install-$kind.log" 2>&1 ||
        { cat "$TMP/install-$kind.log"; exit 1; }
    # The tests and examples are laid out as in the tree (the typing test
    # finds the examples at ../../examples).
    run_tests "$TMP/venv-$kind" "$kind"
done
echo "packaging ok"
