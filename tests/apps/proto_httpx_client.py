"""httpx client for the protocol tests (not an app): N concurrent GETs of URL over one client.

usage: proto_httpx_client.py URL [--n N] [--h2-only] [--cacert CA] [--cert CERT --key KEY]
--h2-only: HTTP/2 only (prior knowledge on http://); otherwise HTTP/1.1 and HTTP/2 offered (ALPN).
Prints one JSON line: {"versions": {...: count}, "statuses": {...: count}, "bodies": [first body]}.
"""

import argparse
import asyncio
import collections
import json
import ssl

import httpx


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--n", type=int, default=1)
    parser.add_argument("--h2-only", action="store_true")
    parser.add_argument("--cacert")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    args = parser.parse_args()
    verify = True
    if args.cacert:
        verify = ssl.create_default_context(cafile=args.cacert)
        if args.cert:
            verify.load_cert_chain(args.cert, args.key)
    async with httpx.AsyncClient(http1=not args.h2_only, http2=True, verify=verify, timeout=10) as client:
        responses = await asyncio.gather(*(client.get(args.url) for _ in range(args.n)))
    print(json.dumps({
        "versions": collections.Counter(r.http_version for r in responses),
        "statuses": collections.Counter(str(r.status_code) for r in responses),
        "bodies": [responses[0].text],
    }))


asyncio.run(main())
