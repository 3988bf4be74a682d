"""`python -m mica ARGS` is `mica ARGS`: this process becomes the server (exec), so its PID,
signals and exit code are the server's own."""

import os
import sys

from mica import binary


def main():
    args = sys.argv[1:]
    try:
        path = binary.find()
    except binary.BinaryNotFound as exc:
        print(f"mica: {exc}", file=sys.stderr)
        return 1
    os.execve(path, ["mica", *args], binary.environment(args))


if __name__ == "__main__":
    sys.exit(main())
