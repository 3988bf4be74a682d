from django.urls import path

from . import views

urlpatterns = [
    path("json", views.json_view),
    path("items/<int:item_id>", views.item),
    path("form", views.form),
    path("form-protected", views.form_protected),
    path("upload", views.upload),
    path("stream", views.stream),
    path("file", views.file),
    path("stats", views.stats),
    path("crash", views.crash),
]

handler404 = "wsgi_django.views.not_found"
handler500 = "wsgi_django.views.server_error"
