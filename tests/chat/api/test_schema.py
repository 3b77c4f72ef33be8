"""GET /api/schema/ (OpenAPI 3) and the docs pages, served without a CDN."""

from __future__ import annotations

import re

import pytest
import yaml
from django.contrib.staticfiles import finders

pytestmark = pytest.mark.django_db

REST_PATHS = {
    "/api/auth/token/": {"post"},
    "/api/auth/token/refresh/": {"post"},
    "/api/rooms/": {"get", "post"},
    "/api/rooms/direct/": {"post"},
    "/api/rooms/{room_id}/": {"patch"},
    "/api/rooms/{room_id}/messages/": {"get", "post"},
    "/api/rooms/{room_id}/messages/{message_id}/": {"patch", "delete"},
    "/api/rooms/{room_id}/mutes/": {"post"},
    "/api/rooms/{room_id}/bans/": {"post"},
    "/api/moderation/site-bans/": {"post"},
}


@pytest.fixture
def schema(api):
    answer = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi")
    assert answer.status_code == 200
    return yaml.safe_load(answer.content)


def test_schema_is_openapi_3_and_public(schema):
    assert schema["openapi"].startswith("3.")


def test_schema_documents_every_rest_route_of_the_protocol(schema):
    for path, methods in REST_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), (path, set(schema["paths"][path]))


def test_schema_documents_wire_shapes_in_camel_case(schema):
    components = schema["components"]["schemas"]
    message = components["Message"]["properties"]
    assert {"id", "roomId", "seq", "userId", "text", "replyTo", "clientId", "timestamp", "readBy"} <= set(message)
    assert set(components["MessagePage"]["properties"]) == {"messages", "hasMore"}
    assert {"unreadCount", "lastMessage"} <= set(components["RoomSummary"]["properties"])
    send = components["MessageSend"]
    assert send["required"] == ["text"]
    assert send["properties"]["text"]["maxLength"] == 5000
    assert set(components["Error"]["properties"]) == {"error", "code", "fields"}


def test_schema_documents_error_answers_and_jwt(schema):
    post = schema["paths"]["/api/rooms/{room_id}/messages/"]["post"]
    assert {"201", "400", "401", "403", "404", "429"} <= set(post["responses"])
    assert any("jwtAuth" in requirement for requirement in post["security"])


@pytest.mark.parametrize("page", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_render_with_local_assets(api, page):
    answer = api.get(page)
    assert answer.status_code == 200
    html = answer.content.decode()
    # Swagger UI's start-up script is a second request (no inline script: CSP)
    script = re.search(r'<script src="([^"]*script=[^"]*)"', html)
    started = api.get(script.group(1).replace("&amp;", "&")).content.decode() if script else html
    assert "/api/schema/" in started
    # no CDN: the machine serving the docs may have no internet
    assert "cdn.jsdelivr.net" not in html
    assets = re.findall(r'(?:src|href)="(/static/drf_spectacular_sidecar/[^"]+)"', html)
    assert assets
    for asset in assets:
        assert finders.find(asset.removeprefix("/static/")), asset
