"""Mica worker, Python side: loads the application and owns the event loop.

Imported once per worker as `_mica_worker`, on the `mica-python` thread (Python's main thread).
The C# side calls these functions; it owns sockets, HTTP and signals.
"""

import asyncio
import importlib
import inspect
import logging
import sys
import traceback

logger = logging.getLogger("mica")


def setup(working_dir, argv0, process_name, log_level, log_format, log_date_format, log_config_json):
    """Import path, process name and logging, before anything of the app is imported. Returns None,
    or why the --log-config dictConfig could not be applied."""
    # The working directory comes first on sys.path, as Granian does, so `module:app` resolves there.
    sys.path.insert(0, working_dir)
    sys.argv = [argv0]
    # Log records take %(processName)s from multiprocessing: the worker's lines, Mica's and the
    # app's, then name the worker as the C# side's lines do.
    import multiprocessing
    multiprocessing.current_process().name = process_name
    if log_config_json is not None:
        return _apply_log_config(log_config_json, log_level, log_format, log_date_format)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(log_format, log_date_format))
    logger.addHandler(handler)
    logger.propagate = False
    if log_level == "off":          # --no-log
        logger.disabled = True
    else:
        logger.setLevel(log_level.upper())
    return None


def _apply_log_config(text, log_level, log_format, log_date_format):
    """The user's dictConfig over Mica's own, entry by entry: a formatter, handler or logger the user
    names replaces Mica's of that name, and Mica's others stay, so a config for the app's loggers
    alone leaves the server's lines as they were (Granian replaces whole sections, which silences
    them). The `mica` logger follows the root logger when the config has a root but no `mica`
    logger, as the C# side's lines do, and gets --log-level unless the config gives it a level."""
    import json
    import logging.config

    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"mica": {"format": log_format, "datefmt": log_date_format}},
        "handlers": {"mica": {"class": "logging.StreamHandler", "formatter": "mica", "stream": "ext://sys.stderr"}},
        "loggers": {"mica": {"handlers": ["mica"], "propagate": False}},
    }
    user = json.loads(text)
    for key, value in user.items():
        if key in ("formatters", "filters", "handlers", "loggers") and isinstance(value, dict):
            config.setdefault(key, {}).update(value)
        else:
            config[key] = value
    if "root" in user and "mica" not in user.get("loggers", {}):
        config["loggers"]["mica"] = {}
    mica = config["loggers"]["mica"]
    if log_level != "off":
        mica.setdefault("level", log_level.upper())
    try:
        logging.config.dictConfig(config)
    except (ValueError, TypeError, AttributeError, ImportError) as exc:
        return f"--log-config could not be applied: {exc}"
    if log_level == "off":          # --no-log wins over the file
        logger.disabled = True
    return None


def provide_rsgi_module(rsgi):
    """Makes `mica.rsgi` importable, and `granian.rsgi` too unless a `granian` package is installed
    (Granian itself; or Mica's opt-in granian shim, whose `granian.rsgi` is this same module), so that
    apps written for Granian find the names they import (types, exceptions). The parent package is
    the installed one when there is one (the mica-server wheel: `from mica import Mica` keeps working
    in the app), else an empty stand-in."""
    import importlib.util
    import types

    def provide(name, module):
        package_name, _, leaf = name.rpartition(".")
        package = sys.modules.get(package_name)
        if package is None:
            try:
                package = importlib.import_module(package_name)
            except ImportError:
                package = sys.modules[package_name] = types.ModuleType(package_name)
                package.__path__ = []
        setattr(package, leaf, module)
        sys.modules[name] = module

    provide("mica.rsgi", rsgi)
    if importlib.util.find_spec("granian") is None:
        provide("granian.rsgi", rsgi)


class LoadError(Exception):
    """The app could not be loaded; `line` says why in one line, the traceback (if any) says where."""

    def __init__(self, line, show_traceback):
        super().__init__(line)
        self.line = line
        self.show_traceback = show_traceback


def _import_target(target, factory):
    module_name, _, attr_path = target.partition(":")
    attr_path = attr_path or "app"
    if not module_name:
        raise LoadError(f"invalid app target {target!r}: expected 'module:attribute'", False)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only "this very module (or a parent package) is missing" is the user's typo; a missing
        # module imported *by* the app is an error inside the app and keeps its traceback.
        if exc.name is not None and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise LoadError(f"could not import module {module_name!r}: {exc}", False) from None
        raise LoadError(f"error while importing module {module_name!r}: {type(exc).__name__}: {exc}", True) from exc
    except BaseException as exc:
        raise LoadError(f"error while importing module {module_name!r}: {type(exc).__name__}: {exc}", True) from exc

    obj = module
    for name in attr_path.split("."):
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise LoadError(f"attribute {attr_path!r} not found in module {module_name!r}", False) from None
    if factory:
        try:
            obj = obj()
        except BaseException as exc:
            raise LoadError(f"app factory {target!r} raised {type(exc).__name__}: {exc}", True) from exc
    if not callable(obj) and not hasattr(obj, "__rsgi__"):
        raise LoadError(f"app {target!r} is not callable (it is a {type(obj).__name__})", False)
    return obj


def _positional_count(fn):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in params if p.kind in kinds)


def detect_interface(app):
    """`--interface auto`. The rule, in order:

    1. an object with `__rsgi__` is RSGI;
    2. a coroutine function (or an object whose `__call__` is one) taking 3 positional
       arguments (scope, receive, send) is ASGI, taking 2 (scope, protocol) is RSGI;
    3. a plain callable taking 3 positional arguments is ASGI (e.g. a middleware class whose
       `__call__` returns an awaitable), taking 2 (environ, start_response) is WSGI;
    4. anything else is an error asking for `--interface`.
    """
    if hasattr(app, "__rsgi__"):
        return "rsgi"
    call = app if inspect.isfunction(app) or inspect.ismethod(app) else getattr(app, "__call__", app)
    count = _positional_count(call)
    is_async = inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app)
    if count == 3:
        return "asgi"
    if count == 2:
        return "rsgi" if is_async else "wsgi"
    return None


def _user_traceback(exc):
    """The traceback of an app's failure without Mica's and importlib's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith(("<mica>", "<frozen importlib"))
              and not f.filename.endswith("importlib/__init__.py")]
    lines = traceback.format_list(frames)
    return "".join((["Traceback (most recent call last):\n"] + lines if lines else [])
                   + traceback.format_exception_only(type(exc), exc))


def load(target, factory, interface):
    """Returns ("ok", app, interface) or ("error", one_line_message, traceback_text)."""
    try:
        app = _import_target(target, factory)
        if interface == "auto":
            interface = detect_interface(app)
            if interface is None:
                raise LoadError(f"cannot tell the interface of app {target!r} from its signature; "
                                "pass --interface asgi|wsgi|rsgi", False)
            logger.info("Interface detected: %s", interface)
        return ("ok", app, interface)
    except LoadError as exc:
        cause = exc.__cause__
        tb = _user_traceback(cause) if exc.show_traceback and cause else ""
        return ("error", exc.line, tb)


def new_loop(kind):
    """`--loop auto` takes uvloop when it is installed; `uvloop` requires it; `asyncio` never uses it."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop
        except ImportError:
            if kind == "uvloop":
                raise
        else:
            loop = uvloop.new_event_loop()
            asyncio.set_event_loop(loop)
            return loop, "uvloop"
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop, "asyncio"


def resolve(fut, value):
    """Completes a future the C# side was holding, unless the awaiting task gave up on it."""
    if not fut.done():
        fut.set_result(value)


def stop_after(loop, awaitable):
    """Stops the loop once `awaitable` (the app's shutdown) is done, whatever its outcome."""
    async def run():
        try:
            await awaitable
        finally:
            loop.stop()
    loop.create_task(run())


async def nothing():
    """The shutdown of an app that has nothing to do at shutdown."""


def at_exit():
    """What interpreter finalisation would do for the app, without finalising (threads may linger)."""
    import atexit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
