#!/usr/bin/env bash
# The CI job: a fresh venv, the project installed with its test extra, then exactly the
# README's test command. Called by .ci/run; runnable by hand from the project root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/include/zlib.h ]; then
    echo "ci: zlib.h missing, installing zlib1g-dev"
    if command -v apt-get >/dev/null; then
        (apt-get update -qq && apt-get install -y -qq zlib1g-dev) >/dev/null
    fi
fi

PY=${PYTHON:-python3}
VENV=${VENV:-.venv-ci}
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
python -m pip install -q -e '.[test]'
python -c "import fastfeed, sys; print('fastfeed', fastfeed.__version__, 'compiled:', fastfeed.COMPILED); sys.exit(0 if fastfeed.COMPILED else 1)"

# The README's test command, verbatim:
python -m pytest -q
