"""The example Mica serves from the README: a small Starlette app.

    ./mica --python /usr/bin/python3 --working-dir examples app:app
"""

import asyncio
import contextlib

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app):
    app.state.greeting = "Hello from Mica"
    yield


async def home(request):
    return PlainTextResponse(f"{request.app.state.greeting}!\n")


async def hello(request):
    return JSONResponse({"hello": request.path_params["name"], "query": dict(request.query_params)})


async def count(request):
    async def numbers():
        for i in range(5):
            yield f"{i}\n"
            await asyncio.sleep(0.2)
    return StreamingResponse(numbers(), media_type="text/plain")


app = Starlette(routes=[Route("/", home), Route("/hello/{name}", hello), Route("/count", count)], lifespan=lifespan)
