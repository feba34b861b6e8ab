# Sourced by the ci/ scripts: the environment the build and the tests need.
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export JANITOR_VENV=${JANITOR_VENV:-$top/.venv}
# breezyshim embeds Python: build against, and import breezy from, the venv.
export PYO3_PYTHON=${PYO3_PYTHON:-$JANITOR_VENV/bin/python}
site=$(ls -d "$JANITOR_VENV"/lib/python3*/site-packages 2>/dev/null | head -n 1)
export PYTHONPATH=${site}${PYTHONPATH:+:$PYTHONPATH}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
