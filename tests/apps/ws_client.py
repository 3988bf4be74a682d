"""Websocket client scenarios run by the tests with Python's `websockets` library (Debian's
python3-websockets 10.4, under /usr/bin/python3). Not an app: a client.

    ws_client.py ping URL               3 pings answered, then an echo
    ws_client.py compression URL        what was negotiated (default client: permessage-deflate
                                        offered), then text, unicode and binary echoes
    ws_client.py framework URL CODE     a framework's echo endpoint (text in, JSON out), then a close
                                        with CODE

The last line on stdout is a JSON report; any exception is reported there too (exit code 1).
"""

import asyncio
import json
import os
import sys
import traceback

import websockets


async def ping(url):
    report = {"pongs": 0}
    async with websockets.connect(url, open_timeout=5, close_timeout=5) as ws:
        for _ in range(3):
            waiter = await ws.ping()
            await asyncio.wait_for(waiter, 5)
            report["pongs"] += 1
        await ws.send("after pings")
        report["echo"] = await asyncio.wait_for(ws.recv(), 5)
    report["close_code"] = ws.close_code
    return report


async def compression(url):
    report = {}
    # compression="deflate" is the default: the client offers permessage-deflate.
    async with websockets.connect(url, open_timeout=5, close_timeout=5) as ws:
        report["request_extensions"] = ws.request_headers.get("Sec-WebSocket-Extensions")
        report["response_extensions"] = ws.response_headers.get("Sec-WebSocket-Extensions")
        report["extensions"] = [e.name for e in ws.extensions]
        big_text = "compressible text " * 10000
        unicode_text = "héllo wörld — 日本語 🎉 " * 50
        binary = os.urandom(64 * 1024) + bytes(64 * 1024)
        results = {}
        for name, message in (("big_text", big_text), ("unicode_text", unicode_text), ("binary", binary)):
            await ws.send(message)
            echo = await asyncio.wait_for(ws.recv(), 5)
            results[name] = {"same": echo == message, "type": type(echo).__name__, "length": len(echo)}
        report["results"] = results
    report["close_code"] = ws.close_code
    return report


async def framework(url, code):
    report = {"replies": []}
    async with websockets.connect(url, open_timeout=5, close_timeout=5) as ws:
        for text in ("hello", "ünïcödé ✓"):
            await ws.send(text)
            report["replies"].append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
        await ws.close(code=code, reason="client done")
    report["close_code"] = ws.close_code
    return report


def main():
    command, url = sys.argv[1], sys.argv[2]
    try:
        if command == "ping":
            report = asyncio.run(ping(url))
        elif command == "compression":
            report = asyncio.run(compression(url))
        elif command == "framework":
            report = asyncio.run(framework(url, int(sys.argv[3])))
        else:
            raise SystemExit(f"unknown command {command}")
        report["ok"] = True
        code = 0
    except Exception as exc:
        report = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        code = 1
    print(json.dumps(report), flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
