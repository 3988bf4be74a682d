"""An RSGI app whose __rsgi_init__ raises: the worker must not start serving."""


def _warm_cache():
    raise RuntimeError("cache warm-up failed: redis.invalid:6379 unreachable")


class App:
    def __rsgi_init__(self, loop):
        _warm_cache()

    async def __rsgi__(self, scope, protocol):
        protocol.response_str(200, [], "should never be served")


app = App()
