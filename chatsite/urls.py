from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/presence/", include("presence.urls")),
    path("api/users/", include("chat.api.users")),
    path("api/", include("chat.api.urls")),
    path("", include("chat.urls")),
]
