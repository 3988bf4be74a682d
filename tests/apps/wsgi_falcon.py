"""Falcon app (WSGI, falcon.App): a resource with on_get and on_post."""

import falcon

_things = {}


class ThingResource:
    def on_get(self, req, resp, thing_id):
        if thing_id not in _things:
            raise falcon.HTTPNotFound(title="no such thing", description=thing_id)
        resp.media = {"id": thing_id, "value": _things[thing_id], "framework": "falcon"}

    def on_post(self, req, resp, thing_id):
        body = req.get_media()
        _things[thing_id] = body.get("value")
        resp.status = falcon.HTTP_201
        resp.media = {"id": thing_id, "stored": body.get("value")}


class HelloResource:
    def on_get(self, req, resp):
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"hello {req.get_param('name', default='falcon')}"


app = falcon.App()
app.add_route("/things/{thing_id}", ThingResource())
app.add_route("/hello", HelloResource())
