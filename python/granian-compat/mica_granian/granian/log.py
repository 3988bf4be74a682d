from mica.constants import LogLevels

__all__ = ["LogLevels"]
