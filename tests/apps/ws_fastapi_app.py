"""FastAPI app for the websocket tests: an @app.websocket echo (receive_text, send_json) that
prints `FASTAPI DISCONNECT <key> <code>` (flushed) when WebSocketDisconnect is raised, and a plain
HTTP route."""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.get("/hello")
async def hello():
    return {"hello": "from fastapi"}


@app.websocket("/ws")
async def echo(websocket: WebSocket, key: str = "-"):
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_json({"framework": "fastapi", "echo": text, "path": websocket.url.path})
    except WebSocketDisconnect as exc:
        print(f"FASTAPI DISCONNECT {key} {exc.code}", flush=True)
