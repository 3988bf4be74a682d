"""Granian picks MPServer or MTServer by Python build; Mica's is one: the `mica` executable."""

from mica import Mica as Server

MPServer = MTServer = Server

__all__ = ["Server", "MPServer", "MTServer"]
