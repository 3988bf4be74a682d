import definitely_missing_dependency_xyz  # noqa: F401


async def app(scope, receive, send):
    pass
