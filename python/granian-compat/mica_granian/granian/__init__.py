"""Mica's stand-in for Granian's Python API (opt-in, see docs/python-api.md): `from granian import
Granian` is `mica.Mica`, which runs the `mica` executable. Found only when Granian itself is not
installed (this folder comes last on sys.path)."""

from mica import Mica as Granian
from mica import __version__

__all__ = ["Granian", "__version__"]
