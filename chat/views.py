"""The server-rendered chat page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie


@login_required
@ensure_csrf_cookie
def chat_page(request: HttpRequest) -> HttpResponse:
    """The page's script reads who it is from `me` and talks to /api/ and /chat itself."""
    me = {"userId": str(request.user.pk), "username": request.user.get_username()}
    return render(request, "chat/index.html", {"me": me})
