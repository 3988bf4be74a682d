"""The WSGI apps every server in the WSGI benchmark serves: "/" (13 bytes) and "/10k" (10 KiB)."""

HELLO = b"Hello, world!"
TEN_K = b"x" * 10240


def app(environ, start_response):
    body = TEN_K if environ["PATH_INFO"] == "/10k" else HELLO
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
