"""Serves an app through the Python API, as a Granian user's script does:

    python api_serve.py mica|granian APP WORKING_DIR [RELOAD_DIR]

`mica`: `from mica import Mica`; `granian`: `from granian import Granian` (the opt-in shim). With
RELOAD_DIR, reload=True watching it. Each
hook writes one line to stderr, where the server logs too, so the order of the lines is the order of
the events. Listens on port 0 (any free port; the server's log says which).
"""

import sys

api, target, working_dir, *reload_dir = sys.argv[1:]
if api == "granian":
    import granian
    from granian import Granian as Server
    from granian.constants import Interfaces
    print(f"API granian from {granian.__file__}", file=sys.stderr, flush=True)
else:
    from mica import Interfaces
    from mica import Mica as Server

server = Server(target, address="127.0.0.1", port=0, interface=Interfaces.ASGI, working_dir=working_dir,
                reload=bool(reload_dir), reload_paths=reload_dir or None)


@server.on_startup
def started():
    print("HOOK startup", file=sys.stderr, flush=True)


@server.on_reload
def reloaded():
    print("HOOK reload", file=sys.stderr, flush=True)


@server.on_shutdown
def stopped():
    print("HOOK shutdown", file=sys.stderr, flush=True)


server.serve()
print("SERVE RETURNED", file=sys.stderr, flush=True)
