"""Rendering a page or one of its partials, the same way for every app's views."""

from functools import wraps

from django.shortcuts import render
from django.utils.cache import add_never_cache_headers


def render_page(request, template, context, partial=None, status=200):
    """The page, or only its `partial` ({% partialdef %}) for a non-boosted htmx
    request. The response varies on HX-Request: one URL answers both."""
    if partial and request.htmx and not request.htmx.boosted:
        template = f"{template}#{partial}"
    response = render(request, template, context, status=status)
    response["Vary"] = "HX-Request"
    return response


def not_stored(view):
    """For pages with action buttons: the browser keeps no copy of the page
    (`Cache-Control: no-store`, which also keeps it out of the back/forward cache), so
    Back asks the server again and the page shows only the actions the state allows now.
    htmx partials of the page are left to say their own caching."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if not (request.htmx and not request.htmx.boosted):
            add_never_cache_headers(response)
        return response

    return wrapper
