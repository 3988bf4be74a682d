"""`granian.rsgi` is `mica.rsgi`: the RSGI types the Mica worker serving the app provides (so it
can only be imported inside a worker)."""

import sys

from mica import rsgi

sys.modules[__name__] = rsgi
