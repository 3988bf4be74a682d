"""Starlette app for the websocket tests: a WebSocketRoute echo (receive_text, send_json) that
prints `STARLETTE DISCONNECT <key> <code>` (flushed) when WebSocketDisconnect is raised, and a plain
HTTP route."""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect


async def hello(request):
    return PlainTextResponse("hello from starlette")


async def echo(websocket: WebSocket):
    key = websocket.query_params.get("key", "-")
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_json({"framework": "starlette", "echo": text, "path": websocket.url.path})
    except WebSocketDisconnect as exc:
        print(f"STARLETTE DISCONNECT {key} {exc.code}", flush=True)


app = Starlette(routes=[Route("/hello", hello), WebSocketRoute("/ws", echo)])
