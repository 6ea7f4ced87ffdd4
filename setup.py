"""Build the fastfeed Cython extensions.

Release build (default): boundscheck/wraparound off, cdivision on, language_level 3.
Debug build: ``FASTFEED_DEBUG=1 pip install -e .`` turns bounds checks, initialised-variable
checks, line tracing and ``binding`` (introspectable signatures, for stubtest) on and writes
Cython's annotation HTML next to each .pyx.
AddressSanitizer build: ``FASTFEED_ASAN=1`` (run Python with libasan preloaded).

Inflate backends: zlib is always built. libdeflate (Debian: ``libdeflate-dev``) is added
when its header is found; ``FASTFEED_INFLATE=zlib`` leaves it out, ``FASTFEED_INFLATE=
libdeflate`` requires it. Both give identical results; ``Inflater(backend=...)`` picks.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTFEED_DEBUG", "") not in ("", "0")

def _have_libdeflate() -> bool:
    """Can we compile and link against libdeflate?"""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc.split()[0]) is None:
        return False
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "t.c")
        with open(src, "w") as f:
            f.write("#include <libdeflate.h>\nint main(void){struct libdeflate_decompressor*p="
                    "libdeflate_alloc_decompressor();libdeflate_free_decompressor(p);return 0;}\n")
        r = subprocess.run([*cc.split(), src, "-o", os.path.join(d, "t"), "-ldeflate"],
                           capture_output=True)
        return r.returncode == 0


INFLATE = os.environ.get("FASTFEED_INFLATE", "auto").lower()
if INFLATE not in ("auto", "zlib", "libdeflate"):
    sys.exit(f"FASTFEED_INFLATE must be auto, zlib or libdeflate, not {INFLATE!r}")
HAVE_LIBDEFLATE = INFLATE != "zlib" and _have_libdeflate()
if INFLATE == "libdeflate" and not HAVE_LIBDEFLATE:
    sys.exit("FASTFEED_INFLATE=libdeflate but libdeflate.h / -ldeflate are not usable "
             "(Debian: apt-get install libdeflate-dev)")
print(f"fastfeed: inflate backends: zlib{' + libdeflate' if HAVE_LIBDEFLATE else ''}")

MODULES = ["_inflate", "_parse", "_events", "_book", "_ring", "_ticker", "_shm", "_engine", "_listener"]

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
if os.environ.get("FASTFEED_ASAN", "") not in ("", "0"):
    cflags += ["-fsanitize=address", "-fno-omit-frame-pointer"]

extensions = [
    Extension(
        f"fastfeed.{name}",
        [f"fastfeed/{name}.pyx"],
        include_dirs=[numpy.get_include()],
        libraries=(["z"] + (["deflate"] if HAVE_LIBDEFLATE else [])) if name == "_inflate" else [],
        define_macros=macros + ([("FASTFEED_HAVE_LIBDEFLATE", "1" if HAVE_LIBDEFLATE else "0")]
                                if name == "_inflate" else []),
        extra_compile_args=cflags,
        extra_link_args=["-fsanitize=address"] if "-fsanitize=address" in cflags else [],
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives=directives,
        annotate=DEBUG,
        include_path=["fastfeed"],
    ),
)
