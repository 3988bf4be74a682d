"""Run at start-up by mica_granian.pth (the opt-in mica-server-granian wheel): `import granian` gives
Mica's shim (site-packages/mica_granian/granian) only when Granian itself is not found.

The shim's finder is the last one on sys.meta_path, so Python asks it for `granian` only after the
normal search of sys.path found nothing: a real Granian anywhere on the path (the virtualenv, the
system's site-packages, PYTHONPATH) always wins.
"""

import importlib.machinery
import os
import sys


class GranianShimFinder:
    path = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "mica_granian")]

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "granian":
            return None
        return importlib.machinery.PathFinder.find_spec(name, cls.path)


if GranianShimFinder not in sys.meta_path:
    sys.meta_path.append(GranianShimFinder)
