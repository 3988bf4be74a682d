import hashlib
import threading

from django.http import FileResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

_lock = threading.Lock()
_file_wrapper_calls = {"count": 0, "types": []}


def json_view(request):
    return JsonResponse({"framework": "django", "path": request.path, "script_name": request.META.get("SCRIPT_NAME")})


def item(request, item_id):
    return JsonResponse({"item_id": item_id, "q": request.GET.get("q")})


@csrf_exempt
def form(request):
    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    return JsonResponse({"name": request.POST.get("name"), "colours": request.POST.getlist("colour")})


def form_protected(request):
    # Not csrf_exempt: a POST without a CSRF token is refused by CsrfViewMiddleware (403).
    return JsonResponse({"name": request.POST.get("name")})


@csrf_exempt
def upload(request):
    f = request.FILES["file"]
    digest = hashlib.sha256()
    size = 0
    for chunk in f.chunks():
        digest.update(chunk)
        size += len(chunk)
    return JsonResponse({"field": request.POST.get("field"), "filename": f.name, "content_type": f.content_type,
                         "size": size, "sha256": digest.hexdigest()})


def stream(request):
    def generate():
        for i in range(5):
            yield f"chunk-{i}\n"

    return StreamingHttpResponse(generate(), content_type="text/plain")


def file(request):
    """FileResponse of ?path=...; Django's WSGIHandler hands it to wsgi.file_wrapper, which is counted here."""
    real = request.META.get("wsgi.file_wrapper")
    if real is not None:
        def counting(filelike, blksize=8192):
            request.META["wsgi.file_wrapper"] = real   # the server may look at it again after the app returns
            wrapper = real(filelike, blksize)
            with _lock:
                _file_wrapper_calls["count"] += 1
            return wrapper

        request.META["wsgi.file_wrapper"] = counting
    return FileResponse(open(request.GET["path"], "rb"), content_type="application/octet-stream")


def stats(request):
    with _lock:
        return JsonResponse({"file_wrapper_calls": _file_wrapper_calls["count"]})


def crash(request):
    raise RuntimeError("django view crashed")


def not_found(request, exception):
    return JsonResponse({"error": "not found", "path": request.path}, status=404)


def server_error(request):
    return JsonResponse({"error": "custom 500"}, status=500)
