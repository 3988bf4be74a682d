"""Test helper, not an app: starts mica the way systemd socket activation does.

usage: python3 socket_activation.py MICA_BINARY [ARGS...]

Binds a listening TCP socket on 127.0.0.1 (any free port), prints "ACTIVATION PORT <port>"
(flushed), puts the socket on fd 3 (SD_LISTEN_FDS_START), sets LISTEN_FDS=1 and LISTEN_PID to this
process's pid, then execs MICA_BINARY with ARGS: exec keeps the pid, so mica sees LISTEN_PID as its own.
"""

import os
import socket
import sys

sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
sock.bind(("127.0.0.1", 0))
sock.listen(128)
port = sock.getsockname()[1]
if sock.fileno() == 3:
    sock.detach()
else:
    os.dup2(sock.fileno(), 3, inheritable=True)
    sock.close()
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDNAMES"] = "http"
print(f"ACTIVATION PORT {port}", flush=True)
os.execv(sys.argv[1], sys.argv[1:])
