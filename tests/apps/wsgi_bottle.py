"""Bottle app (WSGI): a route with a parameter, JSON in and out."""

import bottle

app = bottle.Bottle()


@app.get("/hello/<name>")
def hello(name):
    return f"Hello, {name}!"


@app.get("/json")
def json_endpoint():
    return {"framework": "bottle", "q": bottle.request.query.getunicode("q")}


@app.post("/echo-json")
def echo_json():
    return {"received": bottle.request.json}


@app.get("/items/<item_id:int>")
def item(item_id):
    return {"item_id": item_id}
