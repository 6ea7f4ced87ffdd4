"""Build the fastfeed Cython extensions.

Release build (default): boundscheck/wraparound off, cdivision on, language_level 3.
Debug build: ``FASTFEED_DEBUG=1 pip install -e .`` turns bounds checks, initialised-variable
checks, line tracing and ``binding`` (introspectable signatures, for stubtest) on and writes
Cython's annotation HTML next to each .pyx.
AddressSanitizer build: ``FASTFEED_ASAN=1`` (run Python with libasan preloaded).

Inflate backends: zlib and fastfeed's own small-frame decoder (``builtin``,
fastfeed/_ffinflate.h) are always built. ISA-L (Debian: ``libisal-dev``) and libdeflate
(``libdeflate-dev``) are added when their headers and libraries are found.
``FASTFEED_INFLATE=auto`` (default) builds what is found; ``zlib`` builds zlib only; a
comma list (``isal``, ``libdeflate``, ``isal,libdeflate``) builds exactly those besides
zlib and fails if one is missing. All give identical results; ``Inflater(backend=...)``
picks, the fastest built being the default (``fastfeed._inflate.PREFERENCE``).

Build time: Cython translates the modules in parallel and the C compiler runs one job per
CPU (``FASTFEED_JOBS=N`` or ``build_ext -j N`` to change). Both steps are skipped for a
module whose inputs did not change: Cython when the .c was generated from the same sources
(content hashes of the .pyx and every fastfeed .pxd, the Cython and numpy versions and options: not
file times, which an isolated ``pip`` build environment always makes new), the compiler
when ``build/fastfeed-cache`` holds the extension built from the same .c, flags, headers
and Python. So the README's second ``pip install -e`` compiles nothing. ``rm -rf build``
(or ``FASTFEED_NO_CACHE=1``) forces a full build.
"""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = os.path.dirname(os.path.abspath(__file__))
DEBUG = os.environ.get("FASTFEED_DEBUG", "") not in ("", "0")
ASAN = os.environ.get("FASTFEED_ASAN", "") not in ("", "0")
NO_CACHE = os.environ.get("FASTFEED_NO_CACHE", "") not in ("", "0")
JOBS = int(os.environ.get("FASTFEED_JOBS", "0") or 0) or os.cpu_count() or 1
CACHE_DIR = os.path.join(ROOT, "build", "fastfeed-cache")

# name: (test program, libraries, header to hash into the cache key)
_OPTIONAL = {
    "isal": (
        (
            "#include <isa-l/igzip_lib.h>\nint main(void){struct inflate_state s;"
            "isal_inflate_init(&s);return 0;}\n"
        ),
        ["isal"],
        "isa-l/igzip_lib.h",
    ),
    "libdeflate": (
        (
            "#include <libdeflate.h>\nint main(void){struct libdeflate_decompressor*p="
            "libdeflate_alloc_decompressor();libdeflate_free_decompressor(p);return 0;}\n"
        ),
        ["deflate"],
        "libdeflate.h",
    ),
}


def _can_build(name: str) -> bool:
    """Can we compile and link against this optional inflate library?"""
    src_text, libs, _ = _OPTIONAL[name]
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc.split()[0]) is None:
        return False
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "t.c")
        with open(src, "w") as f:
            f.write(src_text)
        r = subprocess.run(
            [*cc.split(), src, "-o", os.path.join(d, "t"), *(f"-l{lib}" for lib in libs)], capture_output=True
        )
        return r.returncode == 0


_BACKENDS = None


def _backends() -> list[str]:
    """The optional backends to build (found once per setup.py run)."""
    global _BACKENDS
    if _BACKENDS is None:
        _BACKENDS = _find_backends()
    return _BACKENDS


def _find_backends() -> list[str]:
    want = os.environ.get("FASTFEED_INFLATE", "auto").lower().replace(" ", "")
    if want == "auto":
        return [b for b in _OPTIONAL if _can_build(b)]
    if want == "zlib":
        return []
    names = [n for n in want.split(",") if n and n != "zlib"]
    bad = [n for n in names if n not in _OPTIONAL]
    if bad:
        sys.exit(f"FASTFEED_INFLATE must be auto, zlib or a comma list of {sorted(_OPTIONAL)}, not {want!r}")
    missing = [n for n in names if not _can_build(n)]
    if missing:
        sys.exit(
            f"FASTFEED_INFLATE={want} but {', '.join(missing)} is not usable (Debian: "
            "apt-get install libisal-dev / libdeflate-dev)"
        )
    return names


MODULES = [
    "_inflate",
    "_parse",
    "_events",
    "_book",
    "_ring",
    "_ticker",
    "_shm",
    "_engine",
    "_hook",
    "_listener",
]

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
    # debug: introspectable signatures (CI's stubtest checks the .pyi stubs against them);
    # release: plain method descriptors, the cheaper call
    "binding": DEBUG,
}
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("ZLIB_CONST", "1")]
cflags = ["-O3"] if not DEBUG else ["-O0", "-g"]
if DEBUG:
    directives["linetrace"] = True
    macros.append(("CYTHON_TRACE_NOGIL", "1"))
if ASAN:
    cflags += ["-fsanitize=address", "-fno-omit-frame-pointer"]


def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _find_header(name: str, dirs) -> bytes:
    for d in [*dirs, "/usr/local/include", "/usr/include"]:
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return _read(p)
    return b""


_CIMPORT = re.compile(rb"^\s*(?:from\s+fastfeed\.(\w+)\s+cimport|cimport\s+fastfeed\.(\w+))", re.M)


def _pxd_deps(path: str) -> set:
    """The fastfeed .pxd files ``path`` cimports, directly or not (its own .pxd too)."""
    seen = set()
    todo = [path]
    own = path[:-4] + ".pxd"
    if path.endswith(".pyx") and os.path.exists(os.path.join(ROOT, own)):
        todo.append(own)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for m in _CIMPORT.finditer(_read(os.path.join(ROOT, p))):
            dep = f"fastfeed/{(m.group(1) or m.group(2)).decode()}.pxd"
            if os.path.exists(os.path.join(ROOT, dep)):
                todo.append(dep)
    seen.discard(path)
    return seen


def _pyx(ext) -> str:
    return "fastfeed/" + ext.name.rsplit(".", 1)[1] + ".pyx"


class BuildExt(build_ext):
    """Cythonize here (not at import time: ``pip`` runs setup.py several times), in
    parallel and only what changed; compile in parallel; reuse cached extensions."""

    def initialize_options(self):
        super().initialize_options()
        self.parallel = JOBS

    def finalize_options(self):
        super().finalize_options()
        import numpy

        backends = _backends()
        print(
            f"fastfeed: inflate backends: zlib{''.join(' + ' + b for b in backends)}; "
            f"{self.parallel or 1} compile jobs",
            flush=True,
        )
        for ext in self.extensions:
            ext.include_dirs.append(numpy.get_include())
            if ext.name == "fastfeed._inflate":
                ext.libraries = ["z"] + [lib for b in backends for lib in _OPTIONAL[b][1]]
                ext.define_macros += [
                    ("FASTFEED_HAVE_ISAL", "1" if "isal" in backends else "0"),
                    ("FASTFEED_HAVE_LIBDEFLATE", "1" if "libdeflate" in backends else "0"),
                ]
        self._numpy_version = numpy.__version__

    def run(self):
        self._cythonize()
        super().run()

    # -- Cython: content-hashed, parallel ---------------------------------------------------

    def _cython_key(self, ext) -> str:
        import Cython

        pyx = _pyx(ext)
        pxds = sorted(_pxd_deps(pyx))
        return _sha(
            Cython.__version__,
            json.dumps(directives, sort_keys=True),
            DEBUG,
            _read(os.path.join(ROOT, pyx)),
            *(p.encode() + _read(os.path.join(ROOT, p)) for p in pxds),
            self._picows_pxd() if ext.name == "fastfeed._listener" else b"",
            # `cimport numpy` reads numpy's own __init__.pxd: a .c generated against one numpy
            # does not compile against another's headers (a build for another Python gets
            # another numpy in its isolated build environment)
            self._numpy_version,
        )

    @staticmethod
    def _picows_pxd() -> bytes:
        try:
            import picows
        except ImportError:
            return b""
        d = os.path.dirname(picows.__file__)
        return b"".join(_read(os.path.join(d, f)) for f in sorted(os.listdir(d)) if f.endswith(".pxd"))

    def _cythonize(self):
        from Cython.Build import cythonize

        stamps_path = os.path.join(ROOT, "build", "fastfeed-cython.json")
        try:
            with open(stamps_path) as f:
                stamps = json.load(f)
        except (OSError, ValueError):
            stamps = {}
        todo, keys = [], {}
        for ext in self.extensions:
            c_file = _pyx(ext)[:-4] + ".c"
            keys[ext.name] = key = self._cython_key(ext)
            fresh = (
                not NO_CACHE
                and not DEBUG
                and stamps.get(ext.name) == key
                and os.path.exists(os.path.join(ROOT, c_file))
            )
            if not fresh:
                todo.append(ext)
        if todo:
            print(f"fastfeed: cythonizing {len(todo)} module(s) with {JOBS} job(s)", flush=True)
            for ext in todo:
                ext.sources = [_pyx(ext)]
            cythonize(
                todo,
                compiler_directives=directives,
                annotate=DEBUG,
                include_path=["fastfeed"],
                nthreads=min(JOBS, len(todo)) if JOBS > 1 else 0,
                force=True,
                quiet=True,
            )
        for ext in self.extensions:
            ext.sources = [_pyx(ext)[:-4] + ".c"]
        stamps.update(keys)
        os.makedirs(os.path.dirname(stamps_path), exist_ok=True)
        with open(stamps_path, "w") as f:
            json.dump(stamps, f, indent=1, sort_keys=True)

    # -- C compiler: cached by content --------------------------------------------------------

    def _c_key(self, ext) -> str:
        headers = b"".join(
            _find_header(h, ext.include_dirs) for h in ("zlib.h", *(v[2] for v in _OPTIONAL.values()))
        )
        return _sha(
            sys.version,
            sysconfig.get_config_var("EXT_SUFFIX"),
            self._numpy_version,
            os.environ.get("CC", ""),
            os.environ.get("CFLAGS", ""),
            os.environ.get("LDFLAGS", ""),
            cflags,
            sorted(ext.define_macros),
            ext.libraries,
            ext.extra_link_args,
            headers,
            # fastfeed's own C headers (_fastnum.h, _ffinflate.h): the .c only #includes them
            *(
                f.encode() + _read(os.path.join(ROOT, "fastfeed", f))
                for f in sorted(os.listdir(os.path.join(ROOT, "fastfeed")))
                if f.endswith(".h")
            ),
            *(_read(os.path.join(ROOT, s)) for s in ext.sources),
        )

    def build_extension(self, ext):
        target = self.get_ext_fullpath(ext.name)
        key = None if (NO_CACHE or DEBUG or ASAN) else self._c_key(ext)
        cached = os.path.join(CACHE_DIR, f"{ext.name}.{key}.so") if key else None
        if cached and os.path.exists(cached):
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            shutil.copyfile(cached, target)
            shutil.copymode(cached, target)
            print(f"fastfeed: {ext.name}: unchanged, reusing the cached build", flush=True)
            return
        super().build_extension(ext)
        if cached:
            os.makedirs(CACHE_DIR, exist_ok=True)
            for old in os.listdir(CACHE_DIR):  # one entry per module
                if old.startswith(ext.name + "."):
                    os.unlink(os.path.join(CACHE_DIR, old))
            tmp = cached + ".tmp"
            shutil.copyfile(target, tmp)
            os.replace(tmp, cached)


extensions = [
    Extension(
        f"fastfeed.{name}",
        [f"fastfeed/{name}.pyx"],
        define_macros=list(macros),
        extra_compile_args=cflags,
        # fastfeed's own C headers: a changed one rebuilds (setuptools compares times; the
        # cache key above compares their contents)
        depends=sorted(
            os.path.join("fastfeed", f)
            for f in os.listdir(os.path.join(ROOT, "fastfeed"))
            if f.endswith(".h")
        ),
        extra_link_args=["-fsanitize=address"] if ASAN else [],
    )
    for name in MODULES
]

setup(ext_modules=extensions, cmdclass={"build_ext": BuildExt})
