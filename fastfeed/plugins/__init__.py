"""Plugins that bring fastfeed into the frameworks users already run.

``fastfeed.plugins`` is open: a separately distributed package may add a module here (the
cryptofeed plugin is one, under its own licence; see the README). ``pkgutil.extend_path``
makes every ``fastfeed/plugins`` directory on ``sys.path`` part of this package.
"""

from __future__ import annotations

import os
import sys
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

# extend_path searches only the parent package's __path__. With fastfeed installed from a
# source tree (``pip install -e .``) a plugin installed into site-packages lands in
# site-packages/fastfeed/plugins, outside that tree: add every such directory on sys.path.
_seen = {os.path.realpath(p) for p in __path__}
_entry = _dir = ""
for _entry in list(sys.path):
    if not isinstance(_entry, str):
        continue
    _dir = os.path.join(_entry or os.curdir, "fastfeed", "plugins")
    if os.path.realpath(_dir) not in _seen and os.path.isdir(_dir):
        _seen.add(os.path.realpath(_dir))
        __path__.append(_dir)
del _seen, _entry, _dir
