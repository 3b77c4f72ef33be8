"""The API's documentation pages (Swagger UI, Redoc) from drf-spectacular-sidecar's
local files, under a Content-Security-Policy relaxed for them alone."""

from __future__ import annotations

from typing import Any

from csp.constants import UNSAFE_INLINE
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.request import Request
from rest_framework.response import Response

# Both pages style themselves inline (a <style> block in their templates, and
# Redoc's styled-components at run time) and Redoc parses in a blob: worker.
# Scripts stay this origin's only: no inline script, no eval.
DOCS_POLICY = {"style-src": [UNSAFE_INLINE], "worker-src": ["'self'", "blob:"]}


class _RelaxedStyles:
    def finalize_response(self, request: Request, response: Response, *args: Any, **kwargs: Any) -> Response:
        response = super().finalize_response(request, response, *args, **kwargs)  # type: ignore[misc]
        response._csp_update = DOCS_POLICY  # type: ignore[attr-defined]  # read by csp's middleware
        return response


class SwaggerView(_RelaxedStyles, SpectacularSwaggerSplitView):
    """The split view: its start-up script is a second request to this view
    (`?script=`), not an inline <script>, so script-src needs no exception."""


class RedocView(_RelaxedStyles, SpectacularRedocView):
    pass
