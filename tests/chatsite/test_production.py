"""Production defaults: a server started with no settings is a production one
(DEBUG off, HTTPS-only cookies, HSTS, a Content-Security-Policy), `check
--deploy` has nothing to say about a production environment, and proxies are
believed only when named."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from django.test import Client

from tests.chatsite.test_settings import PRODUCTION_VARIABLES, start_django
from tests.factories import PASSWORD, UserFactory
from tests.support.server import ROOT

STRONG_KEY = "k3y-0f-a-pr0ducti0n-s3rv3r-that-is-long-and-random-enough-Zq8xWv2"
PRODUCTION = {"SECRET_KEY": STRONG_KEY, "ALLOWED_HOSTS": "chat.example.com"}
SHOWN = [
    "DEBUG",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_PROXY_SSL_HEADER",
    "CSRF_TRUSTED_ORIGINS",
    "CORS_ALLOWED_ORIGINS",
]


def settings_of(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_VARIABLES}
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {SHOWN!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_debug_is_off_unless_asked_for_so_the_development_key_is_refused():
    result = start_django()
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "DEBUG" in result.stderr
    assert start_django(DEBUG="true").returncode == 0  # what `make run` sets


def test_production_defaults_are_https_only():
    shown = settings_of(**PRODUCTION)
    assert shown["DEBUG"] is False
    assert shown["SESSION_COOKIE_SECURE"] and shown["CSRF_COOKIE_SECURE"] and shown["SECURE_SSL_REDIRECT"]
    assert shown["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600 and shown["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    # no proxy named: a client's X-Forwarded-Proto means nothing
    assert shown["SECURE_PROXY_SSL_HEADER"] is None


def test_development_and_plain_http_trials_keep_plain_cookies():
    for env in ({"DEBUG": "true"}, {**PRODUCTION, "HTTPS": "false"}):
        shown = settings_of(**env)
        assert not shown["SESSION_COOKIE_SECURE"] and not shown["SECURE_SSL_REDIRECT"]
        assert shown["SECURE_HSTS_SECONDS"] == 0


def test_a_trusted_proxy_makes_its_scheme_header_believed():
    shown = settings_of(**PRODUCTION, TRUSTED_PROXY_IPS="10.0.0.5")
    assert shown["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]


def test_csrf_trusted_origins_is_its_own_setting():
    shown = settings_of(**PRODUCTION, CORS_ALLOWED_ORIGINS="https://widget.example.org")
    assert shown["CORS_ALLOWED_ORIGINS"] == ["https://widget.example.org"]
    assert shown["CSRF_TRUSTED_ORIGINS"] == []
    shown = settings_of(**PRODUCTION, CSRF_TRUSTED_ORIGINS="https://chat.example.com,https://admin.example.com")
    assert shown["CSRF_TRUSTED_ORIGINS"] == ["https://chat.example.com", "https://admin.example.com"]


def test_check_deploy_passes_in_a_production_environment():
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_VARIABLES}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, **PRODUCTION},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


# --- Content-Security-Policy -------------------------------------------------------


def policy(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split(" ", 1)[0]: part for part in (p.strip() for p in header.split(";")) if part}


@pytest.mark.django_db
def test_the_chat_page_allows_only_its_own_scripts_and_its_import_map_by_nonce():
    browser = Client()
    browser.force_login(UserFactory(password=None))
    answer = browser.get("/")
    directives = policy(answer)
    nonce = re.search(r"'nonce-([^']+)'", directives["script-src"]).group(1)
    assert f'<script type="importmap" nonce="{nonce}">' in answer.content.decode()
    assert "'unsafe-inline'" not in answer["Content-Security-Policy"]
    assert "'unsafe-eval'" not in answer["Content-Security-Policy"]
    assert directives["object-src"] == "object-src 'none'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/login/", "/admin/login/"])
def test_sign_in_pages_have_the_strict_policy(path):
    directives = policy(Client().get(path))
    assert directives["script-src"] == "script-src 'self'"
    assert directives["style-src"] == "style-src 'self'"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_the_api_docs_relax_styles_only(path):
    directives = policy(Client().get(path))
    assert "'unsafe-inline'" in directives["style-src"]
    assert directives["script-src"] == "script-src 'self'"


# --- The client address behind a proxy (a real server) --------------------------------


def token_status(server, username, password, forwarded_for):
    request = urllib.request.Request(
        f"{server.url}/api/auth/token/",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json", "X-Forwarded-For": forwarded_for},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code


def test_x_forwarded_for_names_the_client_only_behind_a_trusted_proxy(server_factory, settings):
    UserFactory(username="alice")
    limit = settings.AXES_FAILURE_LIMIT
    # behind a trusted proxy (this test, from 127.0.0.1): guesses sprayed from
    # one forwarded address lock that address, and no other
    proxied = server_factory("proxied", TRUSTED_PROXY_IPS="127.0.0.1")
    for n in range(limit):
        token_status(proxied, f"guess{n}", "wrong", "198.51.100.7")
    assert token_status(proxied, "alice", PASSWORD, "198.51.100.7") == 429
    assert token_status(proxied, "alice", PASSWORD, "203.0.113.5") == 200
    # with no proxy named, the header is the client's word: a new value per
    # guess does not escape the count against the real peer
    direct = server_factory("direct")
    for n in range(limit):
        token_status(direct, f"other{n}", "wrong", f"203.0.113.{100 + n}")
    assert token_status(direct, "alice", PASSWORD, "203.0.113.250") == 429
