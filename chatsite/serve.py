"""How the product is served: one uvicorn process with the flags the README
explains (per-message compression off to keep an idle WebSocket under 50 KB;
no lifespan, which the Channels router does not speak; WebSocket messages no
larger than engine.io accepts; forwarded headers only from trusted proxies).

`python -m chatsite.serve` is what `make run` runs, on $HOST:$PORT; the tests'
server processes and `make bench` build their commands here too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from chatsite.env import env_int, env_list, env_str

# engine.io's max_http_buffer_size (chat/sockets/server.py MAX_FRAME_BYTES).
# uvicorn's own default is 16 MB: it would buffer a 16 MB message in memory
# only for engine.io to refuse it; at this size uvicorn closes the connection
# (1009, message too big) as soon as the frame's header announces more.
WS_MAX_BYTES = 1_000_000

SERVE_FLAGS = (
    "--ws-per-message-deflate",
    "false",
    "--lifespan",
    "off",
    "--ws-max-size",
    str(WS_MAX_BYTES),
)


def proxy_flags(trusted: Sequence[str]) -> list[str]:
    """uvicorn rewrites the client address and scheme from X-Forwarded-For and
    X-Forwarded-Proto only on connections from these addresses. uvicorn's own
    default trusts 127.0.0.1, which would let any local process pick its
    address (and its login throttle bucket): nobody is trusted unless told."""
    if not trusted:
        return ["--no-proxy-headers"]
    return ["--proxy-headers", "--forwarded-allow-ips", ",".join(trusted)]


def uvicorn_command(
    *,
    host: str,
    port: int,
    app: str = "chatsite.asgi:application",
    python: str = sys.executable,
    extra: Sequence[str] = (),
    trusted_proxies: Sequence[str] | None = None,
) -> list[str]:
    """The command line; `trusted_proxies` defaults to $TRUSTED_PROXY_IPS (the
    setting Django reads too), so a test's or bench's server honours it."""
    if trusted_proxies is None:
        trusted_proxies = env_list("TRUSTED_PROXY_IPS", [])
    return [
        python,
        "-m",
        "uvicorn",
        app,
        "--host",
        host,
        "--port",
        str(port),
        *SERVE_FLAGS,
        *proxy_flags(trusted_proxies),
        *extra,
    ]


def main() -> None:
    command = uvicorn_command(host=env_str("HOST", "127.0.0.1"), port=env_int("PORT", 8000, minimum=1))
    os.execv(command[0], command)  # noqa: S606 (our own interpreter and arguments)


if __name__ == "__main__":
    main()
