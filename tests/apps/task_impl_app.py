"""What an app may ask of the task its request runs in, served with either `--task-impl`.

Each route answers JSON (or raises); the tests compare the answers under `asyncio` and `rust`.
"""

import asyncio
import contextvars
import json
import threading
import time

import anyio
import anyio.to_thread

request_value = contextvars.ContextVar("request_value", default="unset")


async def current(query):
    task = asyncio.current_task()
    await asyncio.sleep(0.05)   # many requests in flight at once: each must still see its own task
    return {"task": id(task), "type": type(task).__name__, "same_after_await": asyncio.current_task() is task,
            "name": task.get_name()}


async def contextvar(query):
    before = request_value.get()
    request_value.set(query)
    await asyncio.sleep(0.02)
    await asyncio.sleep(0)      # a bare yield: the step comes back on the loop's next turn
    return {"before": before, "after": request_value.get()}


async def timeout(query):
    task = asyncio.current_task()
    try:
        async with asyncio.timeout(0.05):
            await asyncio.sleep(10)
    except TimeoutError:
        return {"timed_out": True, "cancelling": task.cancelling()}
    return {"timed_out": False}


async def anyio_timeout(query):
    started = time.monotonic()
    with anyio.move_on_after(0.05) as scope:
        await anyio.sleep(10)
    return {"cancel_called": scope.cancel_called, "seconds": time.monotonic() - started}


async def task_group(query):
    async def child(n):
        await asyncio.sleep(0.01 * n)
        if n == 2:
            raise ValueError("child 2 failed")
        await asyncio.sleep(10)

    failed = []
    try:
        async with asyncio.TaskGroup() as group:
            for n in range(4):
                group.create_task(child(n))
    except* ValueError as errors:
        failed = [str(e) for e in errors.exceptions]
    return {"errors": failed}


async def thread(query):
    name = await anyio.to_thread.run_sync(lambda: threading.current_thread().name)
    return {"thread": name, "loop_thread": threading.current_thread().name}


async def cancel_self(query):
    """The task cancels itself while awaiting, catches it and goes on."""
    task = asyncio.current_task()
    asyncio.get_running_loop().call_later(0.02, task.cancel)
    try:
        await asyncio.sleep(10)
    except asyncio.CancelledError:
        task.uncancel()
        return {"cancelled": True, "cancelling": task.cancelling()}
    return {"cancelled": False}


async def error(query):
    raise RuntimeError("boom from task_impl_app")


ROUTES = {"/current": current, "/contextvar": contextvar, "/timeout": timeout, "/anyio-timeout": anyio_timeout,
          "/task-group": task_group, "/thread": thread, "/cancel-self": cancel_self, "/error": error}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    handler = ROUTES.get(scope["path"])
    if handler is None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    result = await handler(scope["query_string"].decode())
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(result).encode()})
