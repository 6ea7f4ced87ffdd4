"""Plugins that bring fastfeed into the frameworks users already run.

``fastfeed.plugins`` is open: a separately distributed package may add a module here (the
cryptofeed plugin is one, under its own licence; see the README). ``pkgutil.extend_path``
makes every ``fastfeed/plugins`` directory on ``sys.path`` part of this package.
"""

from __future__ import annotations

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
