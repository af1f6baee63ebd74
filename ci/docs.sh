#!/usr/bin/env bash
# Build the documentation with warnings as errors. Run in the virtual environment where fastcavi is
# installed (ci/test.sh's): installs the docs extra there, then builds into docs/_build/html.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet -e ".[docs]"
rm -rf docs/_build docs/api/generated
python -m sphinx -W --keep-going -q -b html docs docs/_build/html
