"""Raw ASGI app with one route per behaviour under test (see the handlers' docstrings).

Handlers that must be observed from outside print a line tagged with the test's `key` to stdout
(flushed), which the tests read from mica's output.
"""

import asyncio
import hashlib
import json
import sys
from urllib.parse import parse_qs
from _events import event as _event

_inflight = {}
_max_inflight = {}


def _say(line):
    print(line, flush=True)


async def _respond(send, status, body, content_type=b"text/plain", headers=()):
    if isinstance(body, str):
        body = body.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]})
    await send({"type": "http.response.body", "body": body})


async def _json(send, payload):
    await _respond(send, 200, json.dumps(payload), b"application/json")


async def _drain(receive):
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


async def body(scope, receive, send, q):
    """Reads the body chunk by chunk; reports count, sizes, sha256 and whether more_body was consistent."""
    announce = q.get("announce")
    digest = hashlib.sha256()
    total = chunks = max_chunk = 0
    sizes = []
    flags_ok = True
    announced = False
    while True:
        message = await receive()
        if message["type"] != "http.request":
            flags_ok = False
            break
        data = message.get("body", b"")
        more = message.get("more_body", False)
        if not isinstance(data, bytes) or not isinstance(more, bool):
            flags_ok = False
        digest.update(data)
        total += len(data)
        chunks += 1
        sizes.append(len(data))
        max_chunk = max(max_chunk, len(data))
        if announce and total > 0 and not announced:
            announced = True
            _say(f"FIRST CHUNK {announce} {total}")
        if not more:
            break
    await _json(send, {"bytes": total, "chunks": chunks, "max_chunk": max_chunk, "sha256": digest.hexdigest(),
                       "flags_ok": flags_ok, "first_sizes": sizes[:5]})


async def stream_until(scope, receive, send, q):
    """Sends "first", then waits for /release?key=K before sending "second" and ending."""
    key = q["key"]
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
    await asyncio.wait_for(_event("release-" + key).wait(), 20)
    await send({"type": "http.response.body", "body": b"second\n", "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def stream_timed(scope, receive, send, q):
    """Sends "first", sleeps ?s= seconds, then "second" and ends."""
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
    await asyncio.sleep(float(q.get("s", "1")))
    await send({"type": "http.response.body", "body": b"second\n", "more_body": False})


async def release(scope, receive, send, q):
    _event("release-" + q["key"]).set()
    await _respond(send, 200, "released")


async def wait_disconnect(scope, receive, send, q):
    """Reads the whole body, then waits on receive(): the next event must be http.disconnect."""
    key = q["key"]
    await _drain(receive)
    _say(f"WAITING {key}")
    message = await receive()
    _say(f"DISCONNECTED {key} {message['type']}")


async def body_disconnect(scope, receive, send, q):
    """Reads a body the client never finishes sending."""
    key = q["key"]
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            _say(f"BODY DISCONNECTED {key} after {seen} bytes")
            return
        seen += len(message.get("body", b""))
        if seen:
            _say(f"BODY PROGRESS {key} {seen}")
        if not message.get("more_body", False):
            _say(f"BODY COMPLETE {key} {seen}")
            await _respond(send, 200, "complete?!")
            return


async def stream_forever(scope, receive, send, q):
    """Streams a tick every 20 ms until receive() reports the client gone (bounded to ~20 s)."""
    key = q["key"]
    gone = asyncio.Event()

    async def watch():
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                gone.set()
                return

    watcher = asyncio.ensure_future(watch())
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    ticks = 0
    while not gone.is_set() and ticks < 1000:
        await send({"type": "http.response.body", "body": b"tick\n", "more_body": True})
        ticks += 1
        try:
            await asyncio.wait_for(gone.wait(), 0.02)
        except asyncio.TimeoutError:
            pass
    watcher.cancel()
    _say(f"STREAM DISCONNECTED {key} {gone.is_set()}")


async def body_before_start(scope, receive, send, q):
    try:
        await send({"type": "http.response.body", "body": b"too early"})
        outcome = "no error"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    await _respond(send, 200, outcome)


async def double_start(scope, receive, send, q):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    try:
        await send({"type": "http.response.start", "status": 201, "headers": []})
        outcome = "no error"
    except Exception as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    await send({"type": "http.response.body", "body": outcome.encode()})


async def send_after_complete(scope, receive, send, q):
    key = q["key"]
    await _respond(send, 200, "done")
    try:
        await send({"type": "http.response.body", "body": b"too late"})
        _say(f"AFTER COMPLETE {key} no error")
    except Exception as exc:
        _say(f"AFTER COMPLETE {key} {type(exc).__name__}: {exc}")


async def raise_before_start(scope, receive, send, q):
    raise ValueError(f"boom-before-start-{q['key']}")


async def raise_after_start(scope, receive, send, q):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"partial\n", "more_body": True})
    raise ValueError(f"boom-after-start-{q['key']}")


async def return_without_response(scope, receive, send, q):
    await _drain(receive)


async def sleep(scope, receive, send, q):
    """Sleeps ?s= seconds; tracks the highest number of concurrent sleepers per ?group=."""
    group = q.get("group", "")
    key = q.get("key")
    _inflight[group] = _inflight.get(group, 0) + 1
    _max_inflight[group] = max(_max_inflight.get(group, 0), _inflight[group])
    if key:
        _say(f"SLEEP START {key}")
    try:
        await asyncio.sleep(float(q.get("s", "0.5")))
    finally:
        _inflight[group] -= 1
    if key:
        _say(f"SLEEP END {key}")
    await _json(send, {"slept": float(q.get("s", "0.5")), "max_inflight": _max_inflight[group]})


async def headers_out(scope, receive, send, q):
    await _respond(send, 200, "cookies", headers=[
        (b"set-cookie", b"a=1; Path=/"), (b"set-cookie", b"b=2; Path=/"), (b"x-custom", b"Value With Spaces")])


# Large bodies: Kestrel reads them straight from the app's bytes objects, holding a reference
# that Mica must drop once they are sent.
HELD = bytes(range(256)) * 4096   # 1 MiB, kept by this module
_HELD_BASE = sys.getrefcount(HELD)


def pattern(size):
    """0, 1, ..., 250, 0, 1, ...: a period prime to the block sizes, so a misplaced block shows."""
    block = bytes(range(251))
    return (block * (size // 251 + 1))[:size]


async def large(scope, receive, send, q):
    """?size=N&chunks=K: N bytes of pattern() in K sends (more_body on all but the last), no content-length."""
    data, chunks = pattern(int(q["size"])), int(q.get("chunks", "1"))
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/octet-stream")]})
    step = -(-len(data) // chunks)
    for i in range(chunks):
        await send({"type": "http.response.body", "body": data[i * step:(i + 1) * step], "more_body": i < chunks - 1})


async def held(scope, receive, send, q):
    await _respond(send, 200, HELD, b"application/octet-stream")


async def held_refs(scope, receive, send, q):
    """References to HELD besides the module's: 0 once every response of it is sent and let go of."""
    await _json(send, {"extra": sys.getrefcount(HELD) - _HELD_BASE})


async def status(scope, receive, send, q):
    code = int(q.get("code", "200"))
    await send({"type": "http.response.start", "status": code, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"" if code in (204, 304) else f"status {code}".encode()})


ROUTES = {
    "/body": body,
    "/stream-until": stream_until,
    "/stream-timed": stream_timed,
    "/release": release,
    "/wait-disconnect": wait_disconnect,
    "/body-disconnect": body_disconnect,
    "/stream-forever": stream_forever,
    "/body-before-start": body_before_start,
    "/double-start": double_start,
    "/send-after-complete": send_after_complete,
    "/raise-before-start": raise_before_start,
    "/raise-after-start": raise_after_start,
    "/return-without-response": return_without_response,
    "/sleep": sleep,
    "/headers-out": headers_out,
    "/status": status,
    "/large": large,
    "/held": held,
    "/held-refs": held_refs,
}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return   # no lifespan: served without it
    q = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode("latin-1")).items()}
    handler = ROUTES.get(scope["path"])
    if handler is None:
        await _respond(send, 404, "no such route: " + scope["path"])
        return
    await handler(scope, receive, send, q)
