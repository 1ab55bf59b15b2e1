#!/bin/sh
# Install Nanofolks with every extra from the wheels in $1 into the virtual environment $2, using no index.
# The Dockerfile's runtime stage runs this, and so does tests/integration/test_packaging.py.
set -eu
wheels="$1"
venv="$2"
python -m venv "$venv"
"$venv/bin/python" -m pip install --no-index --find-links "$wheels" "nanofolks[all]"
"$venv/bin/nanofolks" version
