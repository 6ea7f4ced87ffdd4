#!/usr/bin/env bash
# CI job of the nautilus_trader plugin (fastfeed.plugins.nautilus): nautilus_trader needs
# Python >= 3.12, so this job has its own venv on that Python, installs fastfeed with the
# `test` and `nautilus` extras (the pinned nautilus_trader from PyPI; fastfeed's Cython
# built from this checkout) and runs the plugin's tests. Fails when no Python 3.12+ is
# found, when a test fails, or when the tests were all skipped. Called by ci/run.sh;
# runnable by hand from the project root.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
    local c
    for c in "${NAUTILUS_PYTHON:-}" python3.12 python3.13 /root/.pyenv/versions/3.12*/bin/python3 \
        /root/.pyenv/versions/3.13*/bin/python3 /usr/bin/python3.12 /usr/local/bin/python3.12; do
        [ -n "$c" ] || continue
        if command -v "$c" >/dev/null 2>&1 \
            && "$c" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            command -v "$c"
            return 0
        fi
    done
    return 1
}

PY=$(find_python) || {
    echo "ci: [nautilus] no Python >= 3.12 found (python3.12 on PATH, /root/.pyenv/versions/3.12*;" \
        "or set NAUTILUS_PYTHON): nautilus_trader cannot be installed" >&2
    exit 1
}
echo "ci: [nautilus] $("$PY" -VV | head -1) at $PY"

VENV=${NAUTILUS_VENV:-.venv-nautilus}
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
t0=$SECONDS
python -m pip install -q -e '.[test,nautilus]'
echo "ci: [nautilus] install took $((SECONDS - t0)) s"
python -c "import fastfeed, nautilus_trader; print('fastfeed', fastfeed.__version__, 'compiled:', fastfeed.COMPILED, '| nautilus_trader', nautilus_trader.__version__)"

REPORT=$(mktemp "${TMPDIR:-/tmp}/nautilus-junit.XXXXXX")
trap 'rm -f "$REPORT"' EXIT
# the plugin's tests, and the error-tree check that imports every fastfeed module (the
# plugin's only where nautilus_trader is installed: here)
python -m pytest -q -p no:cacheprovider --junitxml="$REPORT" tests/test_plugin_nautilus.py tests/test_errors_tree.py
# all skipped (e.g. nautilus_trader failed to import) is a failure of this job
python - "$REPORT" <<'PY'
import sys
import xml.etree.ElementTree as ET

suite = ET.parse(sys.argv[1]).getroot()
suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
tests, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
ran = tests - skipped
print(f"ci: [nautilus] {ran} tests ran, {skipped} skipped")
sys.exit(0 if ran > 0 and skipped == 0 else 1)
PY
