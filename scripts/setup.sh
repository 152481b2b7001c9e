#!/usr/bin/env bash
# Installs what forkqueue needs on a fresh Debian 12 machine (as root, or
# with sudo), builds it, and runs the main demo.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    build-essential cmake ninja-build pkg-config clang clang-format \
    libclang-rt-14-dev valgrind libcmocka-dev libssl-dev python3 python3-dev python3-pip python3-venv >/dev/null

PY=$(python3 -c 'import sys; print(sys.executable)')
# The Python test tools go into the interpreter that builds and tests, not
# whichever one the system packages serve.
PIP_BREAK_SYSTEM_PACKAGES=1 "$PY" -m pip install -q pytest mypy scikit-build-core build
cmake -S . -B build -G Ninja -DPython3_EXECUTABLE="$PY" >/dev/null
cmake --build build
echo "--- demo: examples/squares (C) ---"
./build/examples/squares
