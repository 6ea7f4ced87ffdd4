"""The publisher process of ``NatsSink(publisher="process")``: ``python -m
fastfeed._bus_publisher FD`` (started by the sink, never by hand). See
:func:`fastfeed.bus._publisher_main`."""

from __future__ import annotations

import sys

from fastfeed.bus import _publisher_main

if __name__ == "__main__":
    sys.exit(_publisher_main(int(sys.argv[1])))
