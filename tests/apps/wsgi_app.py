"""Raw WSGI app (PEP 3333) with one route per behaviour under test, chosen by PATH_INFO.

State that the tests observe from outside (close() calls, chunks produced, the most requests in the
app at once) is kept in module globals behind a lock and read back with GET /stats?key=K (JSON);
the tests use one worker, so the counts are consistent. Handlers that must be seen while they run
print a line tagged with the test's key to stdout (flushed).
"""

import hashlib
import io
import json
import os
import sys
import threading
import time
from urllib.parse import parse_qs

_lock = threading.Lock()
_stats = {}          # key -> {counter name: value}
_events = {}         # key -> threading.Event
_inflight = {"now": 0, "max": 0}


def _say(line):
    print(line, flush=True)


def _count(key, what, n=1):
    if not key:
        return
    with _lock:
        counters = _stats.setdefault(key, {})
        counters[what] = counters.get(what, 0) + n


def _event(key):
    with _lock:
        found = _events.get(key)
        if found is None:
            found = _events[key] = threading.Event()
        return found


def _query(environ):
    return {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}


def _respond(start_response, status, body, content_type="text/plain", headers=()):
    if isinstance(body, str):
        body = body.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *headers])
    return [body]


def _json(start_response, payload, status="200 OK"):
    return _respond(start_response, status, json.dumps(payload), "application/json")


def _rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def _plain(value):
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return "<" + type(value).__name__ + ">"


class Closing:
    """An iterable with close(): counts 'produced' chunks and 'closed' calls under its key."""

    def __init__(self, key, chunks, delay=0.0, fail_at=None):
        self.key, self.chunks, self.delay, self.fail_at = key, chunks, delay, fail_at

    def __iter__(self):
        for i, chunk in enumerate(self.chunks):
            if i and self.delay:
                time.sleep(self.delay)
            if i == self.fail_at:
                raise ValueError(f"boom-closing-{self.key}")
            _count(self.key, "produced")
            yield chunk

    def close(self):
        _count(self.key, "closed")


class ClosingList(list):
    """A list body (so sized: sent with Content-Length) whose close() is counted."""

    key = None

    def close(self):
        _count(self.key, "closed")


class TrackedFile(io.FileIO):
    """A real file (it has fileno(), so it can be sent zero-copy) whose first close() is counted."""

    key = None

    def close(self):
        if not self.closed:
            _count(self.key, "file_closed")
        super().close()


class TrackedBytesIO(io.BytesIO):
    """An in-memory file-like object: fileno() raises, so a file wrapper must iterate it in blocks."""

    key = None

    def close(self):
        if not self.closed:
            _count(self.key, "file_closed")
        super().close()


def pattern(size):
    """The bytes served by /bytesio: 0, 1, ..., 250, 0, 1, ... (a period prime to the block sizes)."""
    block = bytes(range(251))
    return (block * (size // 251 + 1))[:size]


# ------------------------------------------------------------------------------------------ environ

def env(environ, start_response, q):
    """Echoes the environ: str/bool/int/tuple values as JSON, others as '<typename>'; the body read.

    With sleep=S, sleeps S seconds after reading the body (to overlap concurrent requests)."""
    body = environ["wsgi.input"].read()
    if q.get("sleep"):
        time.sleep(float(q["sleep"]))
    path_info = environ.get("PATH_INFO")
    payload = {
        "environ": {k: _plain(v) for k, v in environ.items()},
        "types": {k: type(v).__name__ for k, v in environ.items()},
        "body": body.decode("latin-1"),
        "path_info_utf8": path_info.encode("latin-1").decode("utf-8", "replace") if isinstance(path_info, str) else None,
        "input_methods": all(callable(getattr(environ["wsgi.input"], m, None)) for m in ("read", "readline", "readlines", "__iter__")),
        "errors_methods": all(callable(getattr(environ["wsgi.errors"], m, None)) for m in ("write", "writelines", "flush")),
        "file_wrapper_callable": callable(environ.get("wsgi.file_wrapper")),
    }
    return _json(start_response, payload)


def wsgi_errors(environ, start_response, q):
    key = q["key"]
    errors = environ["wsgi.errors"]
    errors.write(f"wsgi-errors-write {key}\n")
    errors.writelines([f"wsgi-errors-writelines {key}\n"])
    errors.flush()
    return _respond(start_response, "200 OK", "logged")


# ------------------------------------------------------------------------------------------ wsgi.input

def input_ops(environ, start_response, q):
    """Reads the body with the method named by op; returns the pieces (latin-1) and their types.

    With announce=K, prints READING K before the first read (so that a test can send the rest then)."""
    inp = environ["wsgi.input"]
    op = q["op"]
    if q.get("announce"):
        _say(f"READING {q['announce']}")
    n = int(q.get("n", "0"))
    pieces = []
    rest = None
    if op == "read_n":
        while True:
            piece = inp.read(n)
            pieces.append(piece)
            if not piece:
                break
        rest = inp.read(n)
    elif op == "read":
        pieces.append(inp.read())
        rest = inp.read()
    elif op == "read_minus1":
        pieces.append(inp.read(-1))
        rest = inp.read(-1)
    elif op == "read_none":
        pieces.append(inp.read(None))
        rest = inp.read(None)
    elif op == "readline":
        while True:
            line = inp.readline()
            pieces.append(line)
            if not line:
                break
        rest = inp.read()
    elif op == "readline_limit":
        while True:
            line = inp.readline(n)
            pieces.append(line)
            if not line:
                break
        rest = inp.read()
    elif op == "readlines":
        pieces.extend(inp.readlines())
        rest = inp.read()
    elif op == "readlines_hint":
        pieces.extend(inp.readlines(n))
        rest = inp.read()
    elif op == "iter":
        pieces.extend(iter(inp))
        rest = inp.read()
    elif op == "mixed":
        pieces.append(inp.read(3))
        pieces.append(inp.readline())
        pieces.append(inp.read(4))
        pieces.append(inp.read())
        rest = inp.read()
    else:
        return _respond(start_response, "400 Bad Request", "unknown op " + op)
    payload = {
        "pieces": [p.decode("latin-1") if isinstance(p, bytes) else repr(p) for p in pieces],
        "types": sorted({type(p).__name__ for p in pieces}),
        "rest": rest.decode("latin-1") if isinstance(rest, bytes) else repr(rest),
        "rest_type": type(rest).__name__,
    }
    return _json(start_response, payload)


def upload_sha(environ, start_response, q):
    """Reads the body in pieces of `piece` bytes with a running sha256; samples VmRSS every MiB."""
    inp = environ["wsgi.input"]
    piece = int(q.get("piece", "65536"))
    announce = q.get("announce")
    digest = hashlib.sha256()
    total = pieces = max_piece = 0
    rss_before = rss_max = _rss_kb()
    next_sample = 1 << 20
    while True:
        data = inp.read(piece)
        if not data:
            break
        if announce and pieces == 0:
            _say(f"FIRST READ {announce} {len(data)}")
        digest.update(data)
        total += len(data)
        pieces += 1
        max_piece = max(max_piece, len(data))
        if total >= next_sample:
            rss_max = max(rss_max, _rss_kb())
            next_sample += 1 << 20
    rss_max = max(rss_max, _rss_kb())
    return _json(start_response, {"bytes": total, "sha256": digest.hexdigest(), "pieces": pieces, "max_piece": max_piece,
                                  "rss_before_kb": rss_before, "rss_max_kb": rss_max})


# ------------------------------------------------------------------------------------------ start_response

def start_twice(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"second start_response accepted"]


def exc_info_before(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
    try:
        raise ValueError("replaced before sending")
    except ValueError:
        body = b"oops body"
        start_response("500 Oops", [("Content-Type", "text/plain"), ("X-Second", "2"), ("Content-Length", str(len(body)))],
                       sys.exc_info())
        return [body]


def exc_info_after(environ, start_response, q):
    key = q.get("key")
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"first\n"
        try:
            raise ValueError(f"boom-exc-info-after-{key}")
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
            _count(key, "not_reraised")
        yield b"after the second start_response\n"

    return _Wrap(key, body())


class _Wrap:
    """Wraps a generator: iterating it iterates the generator; close() is counted then closes it."""

    def __init__(self, key, gen):
        self.key, self.gen = key, gen

    def __iter__(self):
        return self.gen

    def close(self):
        _count(self.key, "closed")
        self.gen.close()


def empty_then_replace(environ, start_response, q):
    """An empty first chunk must not send the headers: a later start_response(exc_info) still replaces them."""
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b""
        try:
            raise ValueError("replace after an empty chunk")
        except ValueError:
            start_response("503 Replaced", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"replaced"

    return body()


def echo_stream(environ, start_response, q):
    """Streams the request body back while reading it, from the response generator."""
    inp = environ["wsgi.input"]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def body():
        while True:
            data = inp.read(int(q.get("piece", "8192")))
            if not data:
                return
            yield data

    return body()


def write(environ, start_response, q):
    w = start_response("200 OK", [("Content-Type", "text/plain")])
    w(b"one;")
    w(b"two;")
    return [b"three;", b"four"]


def write_gen(environ, start_response, q):
    w = start_response("200 OK", [("Content-Type", "text/plain")])
    w(b"w1;")

    def body():
        yield b"g1;"
        yield b"g2"

    return body()


def write_only(environ, start_response, q):
    w = start_response("200 OK", [("Content-Type", "text/plain")])
    for i in range(int(q.get("n", "3"))):
        w(f"line-{i}\n".encode())
    return []


# ------------------------------------------------------------------------------------------ response bodies

def list_body(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"part{i};".encode() for i in range(int(q.get("n", "3")))]


def tuple_body(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (b"tu", b"ple")


def list_cl(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "11")])
    return [b"hello", b" ", b"world"]


def gen(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return (f"chunk-{i}\n".encode() for i in range(int(q.get("n", "5"))))


def gen_timed(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    delay = float(q.get("s", "0.5"))

    def body():
        yield b"first\n"
        time.sleep(delay)
        yield b"second\n"

    return body()


def gen_until(environ, start_response, q):
    """Yields 'first', then waits (up to 20 s) until /release?key=K, then yields 'second'."""
    key = q["key"]
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"first\n"
        released = _event(key).wait(20)
        yield b"second\n" if released else b"timeout\n"

    return body()


def release(environ, start_response, q):
    _event(q["key"]).set()
    return _respond(start_response, "200 OK", "released")


def gen_empty(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return iter([b"", b"a", b"", b"", b"b", b""])


def closing(environ, start_response, q):
    """kind=gen: 3 chunks; list: a sized list; raise: fails at the second chunk; slow: a chunk every 0.1 s for 30 s."""
    key, kind = q["key"], q["kind"]
    if kind == "list":
        body = ClosingList([b"x\n", b"y\n"])
        body.key = key
    elif kind == "gen":
        body = Closing(key, [b"a\n", b"b\n", b"c\n"])
    elif kind == "raise":
        body = Closing(key, [b"partial\n", b"never\n"], fail_at=1)
    elif kind == "slow":
        body = Closing(key, [b"tick\n"] * 300, delay=0.1)
    else:
        return _respond(start_response, "400 Bad Request", "unknown kind " + kind)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return body


# ------------------------------------------------------------------------------------------ file_wrapper

def file(environ, start_response, q):
    """Serves q['path'] through wsgi.file_wrapper (blksize, seek, cl=1: the app sets Content-Length)."""
    key = q.get("key")
    f = TrackedFile(q["path"], "r")
    f.key = key
    seek = int(q.get("seek", "0"))
    if seek:
        f.seek(seek)
    headers = [("Content-Type", "application/octet-stream")]
    if q.get("cl") == "1":
        headers.append(("Content-Length", str(os.fstat(f.fileno()).st_size - seek)))
    start_response("200 OK", headers)
    return environ["wsgi.file_wrapper"](f, int(q.get("blksize", "8192")))


def bytesio(environ, start_response, q):
    key = q.get("key")
    f = TrackedBytesIO(pattern(int(q["size"])))
    f.key = key
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return environ["wsgi.file_wrapper"](f, int(q.get("blksize", "1000")))


# ------------------------------------------------------------------------------------------ errors

def raise_before(environ, start_response, q):
    raise ValueError(f"boom-before-{q.get('key')}")


def raise_mid(environ, start_response, q):
    key = q.get("key")
    start_response("200 OK", [("Content-Type", "text/plain")])

    def body():
        yield b"partial\n"
        raise ValueError(f"boom-mid-{key}")

    return body()


_BAD_STATUS = {"int": 200, "abc": "abc", "empty": "", "bytes": b"200 OK", "none": None}


def bad_status(environ, start_response, q):
    start_response(_BAD_STATUS[q["kind"]], [("Content-Type", "text/plain")])
    return [b"bad status accepted"]


_BAD_HEADERS = {
    "dict": {"Content-Type": "text/plain"},
    "not-a-pair": [("Content-Type", "text/plain", "extra")],
    "str-item": ["Content-Type: text/plain"],
    "int-value": [("Content-Type", "text/plain"), ("X-Number", 5)],
    "bytes-name": [(b"X-Bytes", "1")],
    "none": None,
    "newline-value": [("Content-Type", "text/plain"), ("X-Injected", "a\nInjected: yes")],
    "crlf-value": [("Content-Type", "text/plain"), ("X-Injected", "a\r\nInjected: yes")],
    "newline-name": [("X-A\nInjected", "yes")],
}


def bad_headers(environ, start_response, q):
    start_response("200 OK", _BAD_HEADERS[q["kind"]])
    return [b"bad headers accepted"]


def no_start(environ, start_response, q):
    return [b"no start_response"]


def no_start_empty(environ, start_response, q):
    return []


# ------------------------------------------------------------------------------------------ threads

def sleep(environ, start_response, q):
    """Sleeps s seconds, counting how many requests are in the app at once (max since /reset)."""
    with _lock:
        _inflight["now"] += 1
        _inflight["max"] = max(_inflight["max"], _inflight["now"])
    try:
        time.sleep(float(q.get("s", "0.2")))
    finally:
        with _lock:
            _inflight["now"] -= 1
    return _json(start_response, {"thread": threading.current_thread().name, "native_id": threading.get_native_id()})


def inflight(environ, start_response, q):
    with _lock:
        return _json(start_response, dict(_inflight))


def reset(environ, start_response, q):
    with _lock:
        _inflight["now"] = 0
        _inflight["max"] = 0
    return _respond(start_response, "200 OK", "reset")


# ------------------------------------------------------------------------------------------ misc

def ok(environ, start_response, q):
    return _respond(start_response, "200 OK", "ok")


def status(environ, start_response, q):
    """Answers with the status line given in ?s= (e.g. '201 Made It')."""
    return _respond(start_response, q["s"], "status " + q["s"])


def headers_out(environ, start_response, q):
    body = b"cookies"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2; Path=/"),
                              ("X-Custom", "Value With Spaces"), ("Content-Length", str(len(body)))])
    return [body]


def headers_latin1(environ, start_response, q):
    """PEP 3333: header values are str of latin-1 code points, sent as those bytes."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Latin", "caf\u00e9 \u00fcber"), ("Content-Length", "6")])
    return [b"latin1"]


def no_content(environ, start_response, q):
    """A 204 or 304 whose app still returns a body: the server must not send it."""
    start_response(q.get("s", "204 No Content"), [("X-Kind", "no-content")])
    return [b"should not be sent"]


def str_body(environ, start_response, q):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return ["a str, not bytes"]


# Large bodies: Kestrel reads them straight from the app's bytes objects, holding a reference
# that Mica must drop once they are sent, even if no request follows.
HELD = bytes(range(256)) * 4096   # 1 MiB, kept by this module
_HELD_BASE = sys.getrefcount(HELD)


def large(environ, start_response, q):
    """?size=N&chunks=K&as=list|gen: N bytes of pattern() in K pieces, no content-length."""
    data, chunks = pattern(int(q["size"])), int(q.get("chunks", "1"))
    step = -(-len(data) // chunks)
    pieces = [data[i * step:(i + 1) * step] for i in range(chunks)]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return iter(pieces) if q.get("as") == "gen" else pieces


def held(environ, start_response, q):
    """Sends HELD; a thread says `held-released-KEY` once no reference to it but the module's is left."""
    key = q["key"]

    def watch():
        # First the response's reference (the list returned below, then Mica's), then none.
        for taken in (True, False):
            deadline = time.monotonic() + 20
            while (sys.getrefcount(HELD) > _HELD_BASE) != taken:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.01)
        _say(f"held-released-{key}")

    threading.Thread(target=watch, daemon=True).start()
    return _respond(start_response, "200 OK", HELD, "application/octet-stream")


def stats(environ, start_response, q):
    with _lock:
        return _json(start_response, dict(_stats.get(q.get("key"), {})))


ROUTES = {
    "/ok": ok,
    "/status": status,
    "/headers-out": headers_out,
    "/headers-latin1": headers_latin1,
    "/no-content": no_content,
    "/str-body": str_body,
    "/stats": stats,
    "/large": large,
    "/held": held,
    "/wsgi-errors": wsgi_errors,
    "/input": input_ops,
    "/upload-sha": upload_sha,
    "/start-twice": start_twice,
    "/exc-info-before": exc_info_before,
    "/exc-info-after": exc_info_after,
    "/empty-then-replace": empty_then_replace,
    "/echo-stream": echo_stream,
    "/write": write,
    "/write-gen": write_gen,
    "/write-only": write_only,
    "/list": list_body,
    "/tuple": tuple_body,
    "/list-cl": list_cl,
    "/gen": gen,
    "/gen-timed": gen_timed,
    "/gen-until": gen_until,
    "/release": release,
    "/gen-empty": gen_empty,
    "/closing": closing,
    "/file": file,
    "/bytesio": bytesio,
    "/raise-before": raise_before,
    "/raise-mid": raise_mid,
    "/bad-status": bad_status,
    "/bad-headers": bad_headers,
    "/no-start": no_start,
    "/no-start-empty": no_start_empty,
    "/sleep": sleep,
    "/inflight": inflight,
    "/reset": reset,
}


def app(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/env"):
        return env(environ, start_response, _query(environ))
    handler = ROUTES.get(path)
    if handler is None:
        return _respond(start_response, "404 Not Found", "no route " + path)
    return handler(environ, start_response, _query(environ))
