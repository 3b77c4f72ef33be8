"""Make sure Debian's Chromium is installed for the browser tests.

Playwright drives /usr/bin/chromium (its own browser download cannot be used
here). Installs the `chromium` package with apt when it is missing and we are
root; otherwise says what to do and leaves the browser tests to skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHROMIUM = "/usr/bin/chromium"


def main() -> int:
    if os.path.exists(CHROMIUM):
        return 0
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests.", file=sys.stderr)
        return 0
    print("Installing Debian's chromium for the browser tests (once)...", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
    result = subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", "fonts-dejavu-core"],
        check=False,
        env=env,
    )
    if result.returncode != 0:
        print("apt-get could not install chromium; browser tests will be skipped.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
