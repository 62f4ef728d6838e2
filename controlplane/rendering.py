"""Rendering a page or one of its partials, the same way for every app's views."""

from django.shortcuts import render


def render_page(request, template, context, partial=None, status=200):
    """The page, or only its `partial` ({% partialdef %}) for a non-boosted htmx
    request. The response varies on HX-Request: one URL answers both."""
    if partial and request.htmx and not request.htmx.boosted:
        template = f"{template}#{partial}"
    response = render(request, template, context, status=status)
    response["Vary"] = "HX-Request"
    return response
