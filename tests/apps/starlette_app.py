"""Starlette app (Debian's python3-starlette): JSON, params, form upload, streaming, background
task and a custom exception handler."""

import asyncio
import hashlib

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route
from _events import event as _event

_background_done = {}


class TeapotError(Exception):
    pass


async def hello(request):
    return JSONResponse({"framework": "starlette", "method": request.method})


async def item(request):
    return JSONResponse({"item_id": request.path_params["item_id"], "q": request.query_params.get("q"),
                         "tags": request.query_params.getlist("tag")})


async def upload(request):
    form = await request.form()
    upload_file = form["file"]
    data = await upload_file.read()
    return JSONResponse({"field": form["field"], "filename": upload_file.filename,
                         "content_type": upload_file.content_type, "size": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()})


async def stream(request):
    async def chunks():
        for i in range(5):
            yield f"chunk-{i}\n".encode()
            await asyncio.sleep(0.01)
    return StreamingResponse(chunks(), media_type="text/plain")


async def background(request):
    key = request.query_params["key"]

    async def task():
        # Waits for a *later* request: if the server held the response until the task ended,
        # the client would never see the response.
        await asyncio.wait_for(_event("go-" + key).wait(), 20)
        _background_done[key] = True
        print(f"BACKGROUND DONE {key}", flush=True)
        _event("done-" + key).set()

    return PlainTextResponse("scheduled", background=BackgroundTask(task))


async def release(request):
    _event("go-" + request.query_params["key"]).set()
    return PlainTextResponse("released")


async def background_status(request):
    key = request.query_params["key"]
    try:
        await asyncio.wait_for(_event("done-" + key).wait(), 10)
    except asyncio.TimeoutError:
        pass
    return JSONResponse({"done": _background_done.get(key, False)})


async def teapot(request):
    raise TeapotError("short and stout")


async def teapot_handler(request, exc):
    return JSONResponse({"error": str(exc), "path": request.url.path}, status_code=418)


app = Starlette(
    routes=[
        Route("/json", hello, methods=["GET", "POST"]),
        Route("/items/{item_id:int}", item),
        Route("/upload", upload, methods=["POST"]),
        Route("/stream", stream),
        Route("/background", background, methods=["POST"]),
        Route("/release", release),
        Route("/background-status", background_status),
        Route("/teapot", teapot),
    ],
    exception_handlers={TeapotError: teapot_handler},
)
