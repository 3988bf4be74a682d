"""`--task-impl rust`: each request's coroutine driven without an `asyncio.Task`.

Imported as `_mica_direct_task` on the `mica-python` thread. A `DirectTask` runs the coroutine's
first step at once, inside the dispatch (an `asyncio.Task` waits for the loop's next turn), and
then one step each time the future it awaits completes. It skips what a Task costs and a request
does not need: the Task object and its registration, the extra turn of the loop before the first
step.

It keeps what apps and libraries rely on, which Granian's version of this mode does not: while it
runs, `asyncio.current_task()` is this request's own DirectTask; every request runs in its own
copy of the context (context variables never leak between requests); and `cancel()`,
`cancelling()`, `uncancel()` and done callbacks behave as a Task's, so `asyncio.timeout`,
`asyncio.TaskGroup` and anyio's cancel scopes and worker threads (Starlette's and FastAPI's sync
endpoints) work. Not kept: the DirectTask is not in `asyncio.all_tasks()`, and cannot be awaited.
"""

import asyncio
import contextvars
from asyncio.tasks import _enter_task, _leave_task

_copy_context = contextvars.copy_context
_CancelledError = asyncio.CancelledError


class DirectTask:
    """One request's coroutine, stepped on the event loop as an `asyncio.Task` would step it."""

    __slots__ = ("_coro", "_loop", "_context", "_fut_waiter", "_must_cancel", "_cancel_message",
                 "_num_cancels_requested", "_state", "_callbacks", "__weakref__")

    # _state
    _PENDING, _FINISHED, _CANCELLED = 0, 1, 2

    def __init__(self, coro, loop):
        self._coro = coro
        self._loop = loop
        self._context = _copy_context()
        self._fut_waiter = None
        self._must_cancel = False
        self._cancel_message = None
        self._num_cancels_requested = 0
        self._state = 0
        self._callbacks = None
        self._context.run(self._step, None)

    def _step(self, exc):
        if self._must_cancel:
            self._must_cancel = False
            if not isinstance(exc, _CancelledError):
                exc = _CancelledError(self._cancel_message)
        loop = self._loop
        _enter_task(loop, self)
        try:
            if exc is None:
                result = self._coro.send(None)
            else:
                result = self._coro.throw(exc)
        except StopIteration:
            self._finish(self._FINISHED)
        except _CancelledError:
            self._finish(self._CANCELLED)
        except (KeyboardInterrupt, SystemExit) as error:
            # As from a Task: out of the event loop, which stops the worker.
            self._finish(self._FINISHED)
            loop.call_soon(_reraise, error)
        except BaseException as error:
            self._finish(self._FINISHED)
            loop.call_exception_handler({"message": "Exception in a request's coroutine",
                                         "exception": error, "task": self})
        else:
            if getattr(result, "_asyncio_future_blocking", None):
                result._asyncio_future_blocking = False
                result.add_done_callback(self._wakeup, context=self._context)
                self._fut_waiter = result
                if self._must_cancel and result.cancel(msg=self._cancel_message):
                    self._must_cancel = False
            elif result is None:
                # A bare `yield` (asyncio.sleep(0)): run again on the loop's next turn.
                loop.call_soon(self._step, None, context=self._context)
            else:
                loop.call_soon(self._step, RuntimeError(f"bad yield from a request's coroutine: {result!r}"),
                               context=self._context)
        finally:
            _leave_task(loop, self)

    def _wakeup(self, future):
        self._fut_waiter = None
        try:
            future.result()
        except BaseException as exc:
            self._step(exc)
        else:
            self._step(None)

    def _finish(self, state):
        self._state = state
        self._coro = None
        callbacks = self._callbacks
        if callbacks:
            self._callbacks = None
            for callback, context in callbacks:
                self._loop.call_soon(callback, self, context=context)

    # ------------------------------------------------------------------ what a Task offers

    def cancel(self, msg=None):
        if self._state:
            return False
        self._num_cancels_requested += 1
        waiter = self._fut_waiter
        if waiter is not None and waiter.cancel(msg=msg):
            return True
        self._must_cancel = True
        self._cancel_message = msg
        return True

    def cancelling(self):
        return self._num_cancels_requested

    def uncancel(self):
        if self._num_cancels_requested > 0:
            self._num_cancels_requested -= 1
        return self._num_cancels_requested

    def done(self):
        return self._state != self._PENDING

    def cancelled(self):
        return self._state == self._CANCELLED

    def add_done_callback(self, fn, *, context=None):
        if context is None:
            context = _copy_context()
        if self._state:
            self._loop.call_soon(fn, self, context=context)
        elif self._callbacks is None:
            self._callbacks = [(fn, context)]
        else:
            self._callbacks.append((fn, context))

    def remove_done_callback(self, fn):
        if not self._callbacks:
            return 0
        kept = [(f, c) for f, c in self._callbacks if f != fn]
        removed = len(self._callbacks) - len(kept)
        self._callbacks = kept
        return removed

    def get_coro(self):
        return self._coro

    def get_loop(self):
        return self._loop

    def get_context(self):
        return self._context

    def get_name(self):
        return f"mica-request-{id(self):x}"

    def __repr__(self):
        state = ("pending", "finished", "cancelled")[self._state]
        return f"<DirectTask {state} coro={self._coro!r}>"


def _reraise(error):
    raise error


def starter(loop):
    """What starts each request's coroutine: `start(coro)`."""
    def start(coro):
        DirectTask(coro, loop)
    return start
