#!/usr/bin/env bash
# Install fastcavi with its test extras into a fresh virtual environment and run the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test]"
python -c "import numba, numpy, scipy, sklearn; print('numba', numba.__version__, 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'scikit-learn', sklearn.__version__)"
# The README's test command (the default suite; the tests marked slow are left out by pyproject's addopts):
python -m pytest
# ... and the slow tests, deliberately:
python -m pytest -m slow
# ... and the documentation (Sphinx, warnings as errors):
bash ci/docs.sh
