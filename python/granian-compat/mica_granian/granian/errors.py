from mica.server import ConfigurationError

__all__ = ["ConfigurationError"]
