from mica.constants import HTTPModes, Interfaces, Loops, RuntimeModes, SSLProtocols, StrEnum, TaskImpl

__all__ = ["HTTPModes", "Interfaces", "Loops", "RuntimeModes", "SSLProtocols", "StrEnum", "TaskImpl"]
