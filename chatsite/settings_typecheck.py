"""The settings mypy's Django plugin loads (pyproject.toml): the real ones in
development mode, so a bare `mypy` needs no SECRET_KEY now that DEBUG defaults
to off. Never served."""

import os

os.environ.setdefault("DEBUG", "true")

from chatsite.settings import *  # noqa: F403
