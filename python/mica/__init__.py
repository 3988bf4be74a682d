"""Mica's Python package: `Mica(...).serve()` (Granian's Python API, served by the `mica`
executable), the option enums and settings objects, and `python -m mica` (the `mica` command).

Inside a worker, `mica.rsgi` is the RSGI types module the worker provides (see the README's RSGI
section); it cannot be imported elsewhere. See docs/python-api.md.
"""

from mica.constants import HTTPModes, Interfaces, Loops, LogLevels, RuntimeModes, SSLProtocols, TaskImpl
from mica.http import HTTP1Settings, HTTP2Settings
from mica.server import ConfigurationError, Mica

__version__ = "0.1.0"

__all__ = [
    "Mica", "ConfigurationError", "HTTP1Settings", "HTTP2Settings", "HTTPModes", "Interfaces", "Loops",
    "LogLevels", "RuntimeModes", "SSLProtocols", "TaskImpl", "__version__",
]
