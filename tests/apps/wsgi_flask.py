"""Flask app (WSGI) for the framework tests: routes, JSON, a form, a multipart upload, a stream, errors."""

import hashlib

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)


class Teapot(Exception):
    pass


@app.errorhandler(Teapot)
def teapot_handler(error):
    return jsonify(error="short and stout", path=request.path), 418


@app.before_request
def announce():
    # Printed before the view reads the body: a test sending the body in pieces waits for it.
    key = request.headers.get("X-Announce")
    if key:
        print(f"FLASK REQUEST {key}", flush=True)


@app.get("/json")
def json_endpoint():
    return jsonify(framework="flask", script_name=request.environ.get("SCRIPT_NAME"))


@app.get("/items/<int:item_id>")
def item(item_id):
    return jsonify(item_id=item_id, q=request.args.get("q"), tags=request.args.getlist("tag"))


@app.post("/form")
def form():
    return jsonify(name=request.form.get("name"), colours=request.form.getlist("colour"))


@app.post("/upload")
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(field=request.form.get("field"), filename=f.filename, content_type=f.content_type,
                   size=len(data), sha256=hashlib.sha256(data).hexdigest())


@app.post("/echo-json")
def echo_json():
    return jsonify(received=request.get_json())


@app.get("/stream")
def stream():
    def generate():
        # request is only usable here thanks to stream_with_context
        prefix = request.args.get("prefix", "chunk")
        for i in range(5):
            yield f"{prefix}-{i}\n"

    return Response(stream_with_context(generate()), mimetype="text/plain")


@app.get("/teapot")
def teapot():
    raise Teapot()


@app.get("/crash")
def crash():
    raise RuntimeError("flask view crashed")
