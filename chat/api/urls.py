"""REST routes of protocol.md, mounted at /api/ (presence and the user
directory have their own modules)."""

from __future__ import annotations

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

from chat.api import auth, docs, views

urlpatterns = [
    path("auth/token/", auth.TokenObtainPairView.as_view(), name="token_obtain_pair"),
    path("auth/token/refresh/", auth.TokenRefreshView.as_view(), name="token_refresh"),
    path("auth/logout/", auth.LogoutView.as_view(), name="logout-api"),
    path("rooms/", views.RoomListView.as_view(), name="rooms"),
    # Before rooms/<room_id>/: `direct` is a reserved room id (services.RESERVED_ROOM_IDS).
    path("rooms/direct/", views.DirectRoomView.as_view(), name="room-direct"),
    path("rooms/<str:room_id>/", views.RoomDetailView.as_view(), name="room-detail"),
    path("rooms/<str:room_id>/messages/", views.RoomMessagesView.as_view(), name="room-messages"),
    path(
        "rooms/<str:room_id>/messages/<str:message_id>/",
        views.MessageDetailView.as_view(),
        name="message-detail",
    ),
    path("rooms/<str:room_id>/mutes/", views.RoomMutesView.as_view(), name="room-mutes"),
    path("rooms/<str:room_id>/bans/", views.RoomBansView.as_view(), name="room-bans"),
    path("moderation/site-bans/", views.SiteBansView.as_view(), name="site-bans"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # Swagger UI and Redoc from drf-spectacular-sidecar's static files: no CDN.
    path("docs/", docs.SwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("redoc/", docs.RedocView.as_view(url_name="schema"), name="api-redoc"),
]
