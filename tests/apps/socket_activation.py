"""Test helper, not an app: starts mica the way systemd socket activation does.

usage: python3 socket_activation.py MICA_BINARY [ARGS...]

Binds a listening TCP socket on 127.0.0.1 (any free port), prints "ACTIVATION PORT <port>"
(flushed), puts the socket on fd 3 (SD_LISTEN_FDS_START), sets LISTEN_FDS=1 and LISTEN_PID to this
process's pid, then execs MICA_BINARY with ARGS: exec keeps the pid, so mica sees LISTEN_PID as its own.

With SOCKET_ACTIVATION_PASS=file, fd 3 is /dev/null instead (a unit whose socket went wrong); with
SOCKET_ACTIVATION_PASS=unlistened, a TCP socket that is bound but not listening; with
SOCKET_ACTIVATION_PASS=unix:PATH, a Unix socket listening at PATH (then the port printed is 0).
"""

import os
import socket
import sys

passing = os.environ.pop("SOCKET_ACTIVATION_PASS", "socket")
if passing == "file":
    fd, port = os.open("/dev/null", os.O_RDONLY), 0
elif passing.startswith("unix:"):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(passing[len("unix:"):])
    sock.listen(128)
    fd, port = sock.detach(), 0
else:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    if passing != "unlistened":
        sock.listen(128)
    port = sock.getsockname()[1]
    fd = sock.detach()
if fd != 3:
    os.dup2(fd, 3, inheritable=True)
    os.close(fd)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.environ["LISTEN_FDNAMES"] = "http"
print(f"ACTIVATION PORT {port}", flush=True)
os.execv(sys.argv[1], sys.argv[1:])
