"""Refresh docs/screenshots/room-desktop.png and room-phone.png.

Runs the screenshot browser test (a real server on the test database, Debian's
Chromium) with its output pointed at docs/screenshots/. Needs what the browser
tests need: `make install-dev`, /usr/bin/chromium, and DATABASE_URL/REDIS_URL
as for `make test`.

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    env = {**os.environ, "CHAT_SCREENSHOT_DIR": str(ROOT / "docs" / "screenshots")}
    command = [sys.executable, "-m", "pytest", "tests/browser/test_screenshots.py", "-q", *sys.argv[1:]]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
