"""Named asyncio events the test apps share between requests (one request waits, another sets)."""

import asyncio

_events = {}


def event(name):
    found = _events.get(name)
    if found is None:
        found = _events[name] = asyncio.Event()
    return found
