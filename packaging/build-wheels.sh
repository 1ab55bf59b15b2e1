#!/bin/sh
# Build wheels for Nanofolks and every dependency of the `all` extra into $1 (default ./wheels).
# The Dockerfile's build stage runs this, and so does tests/integration/test_packaging.py.
# llama-cpp-python compiles here: LLAMA_CMAKE_ARGS (packaging/llama-cmake-args) makes a build that runs on any
# x86-64 CPU with AVX2, not only on the build machine's.
set -eu
out="${1:-wheels}"
here="$(cd "$(dirname "$0")" && pwd)"
CMAKE_ARGS="${CMAKE_ARGS:-$(cat "$here/llama-cmake-args")}"
export CMAKE_ARGS
python -m pip wheel --wheel-dir "$out" "$here/..[all]"
