"""The option values the Python API takes, as Granian names them (`granian.constants`,
`granian.log.LogLevels`): string enums whose values are the command line's."""

from enum import Enum


class StrEnum(str, Enum):
    def __str__(self):
        return str(self.value)


class Interfaces(StrEnum):
    AUTO = "auto"          # Mica's: detected from the app (see the README)
    ASGI = "asgi"
    ASGINL = "asginl"
    RSGI = "rsgi"
    WSGI = "wsgi"


class HTTPModes(StrEnum):
    auto = "auto"
    http1 = "1"
    http2 = "2"


class RuntimeModes(StrEnum):
    auto = "auto"
    mt = "mt"
    st = "st"


class Loops(StrEnum):
    auto = "auto"
    asyncio = "asyncio"
    rloop = "rloop"        # refused by Mica, as on the command line
    uvloop = "uvloop"
    winloop = "winloop"    # refused by Mica, as on the command line


class TaskImpl(StrEnum):
    asyncio = "asyncio"
    rust = "rust"          # Mica steps each request's coroutine itself (README: Task implementation)


class SSLProtocols(StrEnum):
    tls12 = "tls1.2"
    tls13 = "tls1.3"


class LogLevels(StrEnum):
    critical = "critical"
    error = "error"
    warning = "warning"
    warn = "warn"
    info = "info"
    debug = "debug"
    notset = "notset"
