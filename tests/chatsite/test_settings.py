"""Settings fail fast: a bad or unsafe environment stops the process at start-up
with the variable's name in the message."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support.server import ROOT

# Variables the tests' own environment sets (tests/environment.py) or a
# developer may have: a subprocess starts without them unless a test says.
PRODUCTION_VARIABLES = {
    "SECRET_KEY",
    "DEBUG",
    "HTTPS",
    "CHAT_RATE_LIMIT_MESSAGES",
    "ALLOWED_HOSTS",
    "CORS_ALLOWED_ORIGINS",
    "CSRF_TRUSTED_ORIGINS",
    "TRUSTED_PROXY_IPS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_PRELOAD",
}


def start_django(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in PRODUCTION_VARIABLES}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.smoke
def test_production_with_the_development_key_refuses_to_start():
    result = start_django(DEBUG="false")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr and "DEBUG" in result.stderr


def test_production_with_a_real_key_starts():
    result = start_django(DEBUG="false", SECRET_KEY="a-long-random-production-secret-for-this-test")
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


@pytest.mark.parametrize(
    ("name", "value"),
    [("DEBUG", "maybe"), ("CHAT_RATE_LIMIT_MESSAGES", "ten"), ("CHAT_RATE_LIMIT_MESSAGES", "0")],
)
def test_a_malformed_variable_is_named(name, value):
    result = start_django(**{"DEBUG": "true", name: value})
    assert result.returncode != 0
    assert name in result.stderr
