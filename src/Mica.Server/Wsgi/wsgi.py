"""WSGI (PEP 3333) for Mica, Python side: start_response, the response loop with its close(),
and the environ's wsgi.input, wsgi.errors and wsgi.file_wrapper.

Imported as `_mica_wsgi`; `run` is called on a `mica-wsgi-N` thread for each request, with the
environ already built by the C# side (`_mica`), which owns the socket and releases the GIL around
every read and write.
"""

import logging
import os
import stat

import _mica

logger = logging.getLogger("mica")

_read = _mica.wsgi_read          # (handle, size) -> bytes, b"" at the end; RequestBodyError if it cannot be read
_send = _mica.wsgi_send          # (handle, status, headers, body, more) -> False if the client is gone
_send_file = _mica.wsgi_send_file  # (handle, status, headers, fd, offset, count)

_CHUNK = 64 * 1024


class ClientDisconnected(OSError):
    """The client went away while the app was writing the response."""


class RequestBodyError(OSError):
    """The request body could not be read: the client went away, or sent it malformed (the server
    then answers 400 itself and closes the connection). The client's doing, not the app's."""


class StartResponse:
    """The `start_response` callable of one request, and the response state behind it."""

    __slots__ = ("handle", "status", "headers", "sent")

    def __init__(self, handle):
        self.handle = handle
        self.status = None
        self.headers = None
        self.sent = False       # the status line and headers went to the client

    def __call__(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None     # no reference cycle through the traceback
        elif self.status is not None:
            raise RuntimeError("start_response() called a second time without exc_info")
        if type(status) is not str:
            raise TypeError(f"WSGI status must be a str, got {type(status).__name__}")
        if type(headers) is not list:
            raise TypeError(f"WSGI response headers must be a list, got {type(headers).__name__}")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data):
        """PEP 3333's write() callable: an unbuffered body chunk, flushed before returning."""
        if data:
            self.send(data, True)

    def send(self, body, more):
        if self.status is None:
            raise RuntimeError("the WSGI app produced a body before calling start_response()")
        if self.sent:
            status = headers = None
        else:
            status, headers = self.status, self.headers
        ok = _send(self.handle, status, headers, body, more)
        self.sent = True
        if not ok:
            raise ClientDisconnected("client disconnected")

    def send_file(self, fd, offset, count):
        if self.status is None:
            raise RuntimeError("the WSGI app returned a body before calling start_response()")
        _send_file(self.handle, self.status if not self.sent else None, self.headers, fd, offset, count)
        self.sent = True


def run(app, environ, handle):
    """One request, start to finish. The C# side answers 500 (or aborts) if no complete response was sent."""
    environ["wsgi.input"] = Input(handle)
    start = StartResponse(handle)
    result = None
    try:
        result = app(environ, start)
        kind = type(result)
        if kind is list or kind is tuple:
            # The whole body is known: one write, with a Content-Length.
            start.send(result[0] if len(result) == 1 else b"".join(result), False)
        elif kind is FileWrapper and (region := result.region()) is not None:
            start.send_file(*region)
        else:
            for chunk in result:
                if chunk:
                    start.send(chunk, True)
            start.send(b"", False)
    except ClientDisconnected:
        logger.debug("Client disconnected during %s %s", environ["REQUEST_METHOD"], environ["PATH_INFO"])
    except RequestBodyError as exc:
        logger.debug("Request body of %s %s unreadable: %s", environ["REQUEST_METHOD"], environ["PATH_INFO"], exc)
    except BaseException as exc:
        where = " after the response started" if start.sent else ""
        logger.error("Exception in WSGI application%s", where, exc_info=exc)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as exc:
                logger.error("Exception in close() of a WSGI response", exc_info=exc)


class Input:
    """`wsgi.input`: the request body, streamed from the socket as the app reads it (never buffered whole)."""

    __slots__ = ("handle", "buffer")

    def __init__(self, handle):
        self.handle = handle
        self.buffer = b""       # read past the end of the last line returned by readline()

    def read(self, size=-1):
        buffered = self.buffer
        if size is None or size < 0:
            parts = [buffered] if buffered else []
            self.buffer = b""
            while chunk := _read(self.handle, _CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        if len(buffered) >= size:
            self.buffer = buffered[size:]
            return buffered[:size]
        # Like a file: exactly `size` bytes unless the body ends first (werkzeug, for one, takes a
        # short read for a client that went away).
        self.buffer = b""
        parts = [buffered] if buffered else []
        missing = size - len(buffered)
        while missing > 0 and (chunk := _read(self.handle, missing)):
            parts.append(chunk)
            missing -= len(chunk)
        return b"".join(parts)

    def readline(self, size=-1):
        limit = None if size is None or size < 0 else size
        line = self.buffer
        start = 0
        while True:
            end = line.find(b"\n", start)
            if end >= 0 and (limit is None or end < limit):
                self.buffer = line[end + 1:]
                return line[:end + 1]
            if limit is not None and len(line) >= limit:
                self.buffer = line[limit:]
                return line[:limit]
            start = len(line)
            chunk = _read(self.handle, _CHUNK)
            if not chunk:
                self.buffer = b""
                return line
            line += chunk

    def readlines(self, hint=-1):
        lines = []
        total = 0
        while line := self.readline():
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
                break
        return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line


class Errors:
    """`wsgi.errors`: text written here goes to the worker's log, a line at a time."""

    def __init__(self):
        self.log = logging.getLogger("mica.wsgi.errors")
        self.pending = ""

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"wsgi.errors.write() takes str, not {type(text).__name__}")
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.log.error("%s", line)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if self.pending:
            self.log.error("%s", self.pending)
            self.pending = ""


class FileWrapper:
    """`wsgi.file_wrapper`: a regular file is sent by the server without passing through Python;
    anything else file-like is read in `block_size` pieces."""

    def __init__(self, filelike, block_size=8192):
        self.filelike = filelike
        self.block_size = block_size
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def region(self):
        """(fd, offset, count) of what is left to send when it is a regular file, else None."""
        try:
            fd = self.filelike.fileno()
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None
            offset = self.filelike.tell()
        except (AttributeError, OSError, ValueError):
            return None
        return fd, offset, max(0, info.st_size - offset)

    def __iter__(self):
        read = self.filelike.read
        while data := read(self.block_size):
            yield data
