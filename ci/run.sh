#!/usr/bin/env bash
# The CI job: a fresh venv, the project installed with its test and lint extras, the linters
# and type checks, then exactly the README's test command. Called by .ci/run; runnable by hand
# from the project root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/include/zlib.h ]; then
    echo "ci: zlib.h missing, installing zlib1g-dev"
    if command -v apt-get >/dev/null; then
        (apt-get update -qq && apt-get install -y -qq zlib1g-dev) >/dev/null
    fi
fi

# ISA-L and libdeflate are optional inflate backends: build and test them when Debian's
# packages can be had; without them the build has fewer backends and everything still passes.
for pkg_hdr in libisal-dev:/usr/include/isa-l/igzip_lib.h libdeflate-dev:/usr/include/libdeflate.h; do
    pkg=${pkg_hdr%%:*}
    if [ ! -f "${pkg_hdr#*:}" ] && command -v apt-get >/dev/null; then
        echo "ci: installing $pkg (optional inflate backend)"
        (apt-get update -qq && apt-get install -y -qq "$pkg") >/dev/null 2>&1 \
            || echo "ci: $pkg not available, building without that backend"
    fi
done

PY=${PYTHON:-python3}
VENV=${VENV:-.venv-ci}
rm -rf "$VENV"
"$PY" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
t0=$SECONDS
python -m pip install -q -e '.[test,lint]'
echo "ci: install (fresh venv, cold build) took $((SECONDS - t0)) s"
python -c "import fastfeed, sys; print('fastfeed', fastfeed.__version__, 'compiled:', fastfeed.COMPILED); sys.exit(0 if fastfeed.COMPILED else 1)"

# --- Lint, format, types, stubs (configured in pyproject.toml; .pre-commit-config.yaml runs
# the same on commit). Every check runs and reports; the job fails after the last if any did.
# The compiled modules whose .pyi stubs stubtest compares with the runtime: every one,
# one per fastfeed/_*.pyx
mapfile -t STUB_MODULES < <(cd fastfeed && for f in _*.pyx; do echo "fastfeed.${f%.pyx}"; done)
lint_failed=()
lint() {  # lint NAME CMD...: run one check, remember a failure
    echo "ci: [lint] $*"
    "${@:2}" || lint_failed+=("$1")
}
lint ruff ruff check --no-fix --output-format=concise .
lint ruff-format ruff format --check .
lint cython-lint cython-lint fastfeed
lint mypy mypy
# the release build has no introspectable signatures (binding=False): this checks names,
# kinds, finality, properties and constructors; the debug build below checks every signature
lint stubtest python -m mypy.stubtest --allowlist ci/stubtest-allowlist.txt "${STUB_MODULES[@]}"
if [ ${#lint_failed[@]} -gt 0 ]; then
    echo "ci: [lint] FAILED: ${lint_failed[*]}"
    exit 1
fi

# The README's test command, verbatim:
python -m pytest -q

# --- Soak, CI mode: 1 minute of the live client at 50k msg/s against the exchange process;
# fails only on what machine load cannot change: errors, reconnects, lost frames (exchange's
# send count vs the client's receive count) or RSS growth beyond a generous bound. Rate and
# backlog are printed, not checked (benchmarks/soak.py; the 1-hour timing run is by hand).
python benchmarks/soak.py --ci

# --- Plugin jobs: each framework plugin on the Python its framework needs, in its own venv
# (ci/plugin-*.sh; each installs fastfeed, the plugin and the pinned framework, and runs the
# plugin's tests; in the main venv above those tests skip by pytest.importorskip).
for job in ci/plugin-*.sh; do
    [ -e "$job" ] || continue
    echo "ci: [plugin] $job"
    t0=$SECONDS
    bash "$job"
    echo "ci: [plugin] $job took $((SECONDS - t0)) s"
done

# --- Extra steps: every test that reaches compiled code against a debug build and an
# AddressSanitizer build ---
# Each step copies the source tree (tracked and untracked-but-not-ignored files) to a temp
# dir, builds the extensions in place there with this venv, checks that Python imports that
# copy, and runs the tests marked `native` (they reach C code: engine, parser, inflate
# backends, books, rings, event log, shared memory, listener; see tests/conftest.py) with a
# short fuzz pass. Any failure (a test, an ASan report: abort_on_error=1) fails the job. See
# docs/fuzzing.md.
shopt -s inherit_errexit
ROOT=$PWD
NATIVE_TESTS=(-m native)
CI_TMP=$(mktemp -d "${TMPDIR:-/tmp}/fastfeed-ci.XXXXXX")
trap 'rm -rf "$CI_TMP"' EXIT
# `pip install -e` built in an isolated environment: build_ext --inplace needs these here.
python -m pip install -q "Cython>=3.0.10" "setuptools>=77" wheel

copy_tree() {  # copy_tree DEST: the source tree as git sees it, without build outputs
    mkdir -p "$1"
    git -C "$ROOT" ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do [ -e "$ROOT/$f" ] && printf '%s\0' "$f"; done \
        | tar -C "$ROOT" --null -T - -cf - | tar -C "$1" -xf -
}

build_copy() {  # build_copy NAME ENV...: copy + build_ext --inplace with ENV; prints the dir
    local dir="$CI_TMP/$1"
    shift
    copy_tree "$dir"
    (cd "$dir" && env "$@" python setup.py -q build_ext --inplace -j 2 >"$dir/build.log" 2>&1) \
        || { tail -50 "$dir/build.log" >&2; return 1; }
    echo "$dir"
}

run_engine_tests() {  # run_engine_tests DIR ENV...: the engine tests against the copy in DIR
    local dir=$1
    shift
    (
        cd "$dir"
        export PYTHONPATH="$dir" FASTFEED_EXPECT_BUILD_DIR="$dir"
        # a fixed number of fuzz runs: the same inputs and verdict on a fast or a busy machine
        export FASTFEED_FUZZ_CHUNKS="${FASTFEED_CI_FUZZ_CHUNKS:-6}"
        unset FASTFEED_FUZZ_SECONDS
        env "$@" python -c "
import os, sys, fastfeed
from fastfeed import _engine, _inflate, _parse
want = os.path.join(os.environ['FASTFEED_EXPECT_BUILD_DIR'], 'fastfeed')
files = [fastfeed.__file__, _engine.__file__, _inflate.__file__, _parse.__file__]
print('ci: testing', *files, sep='\n    ')
sys.exit(0 if fastfeed.COMPILED and all(os.path.dirname(f) == want for f in files) else 1)"
        # --capture=sys: what C code writes to fd 2 (an ASan report) reaches the log even
        # when the process aborts
        export FASTFEED_FUZZ_LAST_INPUT="$dir/fuzz-last-input"
        env "$@" python -m pytest -q -p no:cacheprovider --capture=sys "${NATIVE_TESTS[@]}" || {
            rc=$?
            if [ -f "$dir/fuzz-last-input.txt" ]; then  # after a hard crash: what was being fed
                echo "ci: last fuzz input: $(cat "$dir/fuzz-last-input.txt")"
                python -c "import sys; print(repr(open(sys.argv[1], 'rb').read()[:4000]))" "$dir/fuzz-last-input.bin"
            fi
            exit $rc
        }
    )
}

echo "ci: [debug] FASTFEED_DEBUG=1 build (bounds/wraparound/initialized checks, -O0 -g, linetrace)"
t0=$SECONDS
DEBUG_DIR=$(build_copy debug FASTFEED_DEBUG=1)
test -f "$DEBUG_DIR/fastfeed/_parse.html"  # Cython's annotation: only written by the debug build
echo "ci: [debug] built in $((SECONDS - t0)) s"
# the debug build has binding=True: stubtest also compares every method's signature
(cd "$DEBUG_DIR" && PYTHONPATH="$DEBUG_DIR" python -m mypy.stubtest \
    --allowlist ci/stubtest-allowlist.txt "${STUB_MODULES[@]}")
run_engine_tests "$DEBUG_DIR"

echo "ci: [asan] FASTFEED_ASAN=1 build (AddressSanitizer; CPython itself is not instrumented)"
t0=$SECONDS
ASAN_DIR=$(build_copy asan FASTFEED_ASAN=1)
ldd "$ASAN_DIR"/fastfeed/_parse.*.so | grep libasan >/dev/null  # really linked against ASan
echo "ci: [asan] built in $((SECONDS - t0)) s"
LIBASAN=$(gcc -print-file-name=libasan.so)
# the last step: its pytest summary is the job's closing line
run_engine_tests "$ASAN_DIR" LD_PRELOAD="$LIBASAN" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 PYTHONMALLOC=malloc
