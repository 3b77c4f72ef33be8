from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.urls import include, path, re_path


def api_not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    """Unknown /api/ paths answer in the API's error shape, not Django's HTML page."""
    return JsonResponse({"error": f"No API endpoint at {request.path}", "code": "not_found"}, status=404)


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/presence/", include("presence.urls")),
    path("api/users/", include("chat.api.users")),
    path("api/", include("chat.api.urls")),
    re_path(r"^api/(?P<rest>.*)$", api_not_found),
    path("", include("chat.urls")),
]
