#!/usr/bin/env bash
# CI job of the cryptofeed plugin (plugins/cryptofeed, the separately distributed AGPL package
# fastfeed-cryptofeed): cryptofeed 3.0 needs Python >= 3.13, so this job makes its own venv on
# it, installs fastfeed (editable, as the main job), the plugin and the pinned cryptofeed
# from the repository's files and PyPI, and runs the plugin's tests. A missing cryptofeed
# fails the tests here instead of skipping them (FASTFEED_REQUIRE_CRYPTOFEED=1), and the job
# fails if pytest skipped anything. Called by ci/run.sh; runnable by hand from the root.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON313:-}
if [ -z "$PY" ]; then
    if command -v python3.13 >/dev/null 2>&1 && python3.13 -c pass 2>/dev/null; then
        PY=$(command -v python3.13)
    else
        for cand in /root/.pyenv/versions/3.13*/bin/python3 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3; do
            if [ -x "$cand" ]; then
                PY=$cand
                break
            fi
        done
    fi
fi
if [ -z "$PY" ] || ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 13) else 1)'; then
    echo "ci: [cryptofeed] no Python >= 3.13 found (python3.13 on PATH, pyenv 3.13.*, or set PYTHON313)" >&2
    exit 1
fi
echo "ci: [cryptofeed] using $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

VENV=${VENV_CRYPTOFEED:-.venv-ci-cryptofeed}
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
t0=$SECONDS
python -m pip install -q -e '.[test]'
# not editable: an editable install of a package inside fastfeed's namespace would shadow
# fastfeed's own editable finder (see plugins/cryptofeed/README.md)
python -m pip install -q ./plugins/cryptofeed 'cryptofeed==3.0.1'
echo "ci: [cryptofeed] install took $((SECONDS - t0)) s"
python -c "import fastfeed, sys; sys.exit(0 if fastfeed.COMPILED else 1)"
python -c "from fastfeed.plugins.cryptofeed import DigiFinex; import cryptofeed.feed; print('ci: [cryptofeed] plugin', DigiFinex.__module__)"

LOG=$(mktemp "${TMPDIR:-/tmp}/fastfeed-cryptofeed.XXXXXX")
trap 'rm -f "$LOG"' EXIT
FASTFEED_REQUIRE_CRYPTOFEED=1 python -m pytest -q -rs -p no:cacheprovider tests/test_plugin_cryptofeed.py | tee "$LOG"
summary=$(tail -1 "$LOG")
if ! grep -q "passed" <<<"$summary" || grep -q "skipped" <<<"$summary"; then
    echo "ci: [cryptofeed] the plugin tests did not all run: $summary" >&2
    exit 1
fi
