"""Where the `mica` executable is, and the environment it runs in.

The executable is looked for, in this order:

1. `MICA_BINARY`: a path given by the user;
2. `mica/bin/mica` in this package: what the `mica-server` wheel carries;
3. the repository's `./mica` launcher, when this package is the repository's `python/mica`
   (development: it builds Mica when a source changed).

Unless told otherwise (`--python`, `MICA_PYTHON`, `GRANIAN_PYTHON`), the server embeds the Python
running this code, so a virtualenv's `mica` serves with that virtualenv's interpreter and packages.
"""

import os
import sys

_PACKAGE = os.path.dirname(os.path.abspath(__file__))


class BinaryNotFound(RuntimeError):
    pass


def find():
    """The path of the executable to run (see the module's docstring for the order)."""
    given = os.environ.get("MICA_BINARY")
    if given:
        if not os.access(given, os.X_OK):
            raise BinaryNotFound(f"MICA_BINARY={given} is not an executable file")
        return given
    shipped = os.path.join(_PACKAGE, "bin", "mica")
    if os.access(shipped, os.X_OK):
        return shipped
    repository = os.path.dirname(os.path.dirname(_PACKAGE))
    launcher = os.path.join(repository, "mica")
    if os.path.isdir(os.path.join(repository, "src", "Mica")) and os.access(launcher, os.X_OK):
        return launcher
    raise BinaryNotFound(
        "cannot find the mica executable: install the mica-server wheel, or set MICA_BINARY to its path")


def environment(args, base=None):
    """The environment to run the executable with `args` in: `base` (default: this process's) plus
    MICA_PYTHON = this interpreter when no other choice of Python was made."""
    env = dict(os.environ if base is None else base)
    chose_python = any(a == "--python" or a.startswith("--python=") for a in args)
    if not chose_python and not env.get("MICA_PYTHON") and not env.get("GRANIAN_PYTHON"):
        env["MICA_PYTHON"] = sys.executable
    return env
