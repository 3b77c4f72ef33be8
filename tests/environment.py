"""Loaded with `-p tests.environment` (pyproject addopts), before Django's settings.

The test process and the server processes it starts must share a SECRET_KEY,
or tokens minted here would be refused there; and everything runs with DEBUG
off (the default), where the development key is refused.

The tests speak plain HTTP (the test client, the servers on 127.0.0.1), so
HTTPS is off: no redirect to https://, cookies that plain HTTP may carry.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-shared-by-the-test-process-and-its-servers")
os.environ.setdefault("HTTPS", "false")
