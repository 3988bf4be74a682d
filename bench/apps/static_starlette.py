"""uvicorn's way to serve static files: a Starlette app with StaticFiles mounted at /static."""

import os

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

app = Starlette(routes=[Mount("/static", StaticFiles(directory=os.path.join(os.path.dirname(__file__), "static")))])
