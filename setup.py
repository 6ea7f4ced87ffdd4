"""Build the fastfeed Cython extensions.

Release build (default): boundscheck/wraparound off, cdivision on, language_level 3.
Debug build: ``FASTFEED_DEBUG=1 pip install -e .`` turns bounds checks, initialised-variable
checks and line tracing on and writes Cython's annotation HTML next to each .pyx.
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("FASTFEED_DEBUG", "") not in ("", "0")

MODULES = ["_inflate", "_parse", "_book", "_ring", "_engine", "_listener"]

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    "cdivision": not DEBUG,
    "embedsignature": True,
    "binding": False,
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
        libraries=["z"] if name == "_inflate" else [],
        define_macros=macros,
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
