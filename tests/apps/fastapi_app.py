"""FastAPI app (Debian's python3-fastapi, pydantic v1): the same features as starlette_app.py plus
a body model, validation errors and a sync (def) endpoint run in a thread pool."""

import asyncio
import hashlib
import threading
from typing import List, Optional

from fastapi import BackgroundTasks, FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from _events import event as _event

app = FastAPI()

_background_done = {}


class Item(BaseModel):
    name: str
    price: float
    tags: List[str] = []


class TeapotError(Exception):
    pass


@app.exception_handler(TeapotError)
async def teapot_handler(request: Request, exc: TeapotError):
    return JSONResponse(status_code=418, content={"error": str(exc), "path": request.url.path})


@app.get("/json")
async def hello():
    return {"framework": "fastapi"}


@app.get("/items/{item_id}")
async def read_item(item_id: int, q: Optional[str] = None):
    return {"item_id": item_id, "q": q}


@app.post("/items")
async def create_item(item: Item):
    return {"received": item.dict()}


@app.get("/sync")
def sync_endpoint(value: int = 1):
    current = threading.current_thread()
    return {"sync": True, "doubled": value * 2, "in_main_thread": current is threading.main_thread(),
            "thread": current.name}


@app.post("/upload")
async def upload(field: str = Form(...), file: UploadFile = File(...)):
    data = await file.read()
    return {"field": field, "filename": file.filename, "content_type": file.content_type,
            "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.get("/stream")
async def stream():
    async def chunks():
        for i in range(5):
            yield f"chunk-{i}\n".encode()
            await asyncio.sleep(0.01)
    return StreamingResponse(chunks(), media_type="text/plain")


@app.post("/background")
async def background(key: str, tasks: BackgroundTasks):
    async def task():
        await asyncio.wait_for(_event("go-" + key).wait(), 20)
        _background_done[key] = True
        print(f"BACKGROUND DONE {key}", flush=True)
        _event("done-" + key).set()

    tasks.add_task(task)
    return {"scheduled": key}


@app.get("/release")
async def release(key: str):
    _event("go-" + key).set()
    return {"released": key}


@app.get("/background-status")
async def background_status(key: str):
    try:
        await asyncio.wait_for(_event("done-" + key).wait(), 10)
    except asyncio.TimeoutError:
        pass
    return {"done": _background_done.get(key, False)}


@app.get("/teapot")
async def teapot():
    raise TeapotError("short and stout")
