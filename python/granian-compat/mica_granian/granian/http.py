from mica.http import HTTP1Settings, HTTP2Settings

__all__ = ["HTTP1Settings", "HTTP2Settings"]
