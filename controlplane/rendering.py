"""Rendering a page or one of its partials, the same way for every app's views, and
answering the polls of a partial cheaply when nothing it shows has changed."""

import hashlib
import json
from functools import cache, wraps
from pathlib import Path

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers, get_conditional_response, patch_vary_headers
from django.utils.http import quote_etag
from django_htmx.http import HttpResponseStopPolling

# The request and response header that carries a polled partial's version (htmx 4's
# ptag extension names it so; static/js/console.js sends it back on htmx 2).
PTAG_HEADER = "HX-PTag"
# htmx stops polling an element answered with this status (286).
STOP_POLLING = HttpResponseStopPolling.status_code


def is_partial(request):
    """An htmx request for a part of the page (not a boosted link to the whole page)."""
    return bool(request.htmx) and not request.htmx.boosted


def render_page(request, template, context, partial=None, status=200):
    """The page, or only its `partial` ({% partialdef %}) for a non-boosted htmx
    request. The response varies on HX-Request: one URL answers both."""
    if partial and is_partial(request):
        template = f"{template}#{partial}"
    response = render(request, template, context, status=status)
    response["Vary"] = "HX-Request"
    return response


@cache
def _templates_digest():
    """The console's templates as deployed (read once per process): a deploy that
    changes them changes every tag, so a browser never keeps markup of the old ones."""
    digest = hashlib.sha256()
    for folder in settings.TEMPLATES[0]["DIRS"]:
        for path in sorted(Path(folder).rglob("*.html")):
            digest.update(path.read_bytes())
    return digest.hexdigest()


def poll_tag(request, fingerprint):
    """The entity tag of what `request` would be shown: the partial's `fingerprint`
    (the version of the rows it reads), for this URL and query, for this user with
    these permissions (which decide the buttons), rendered by these templates."""
    user = request.user
    # A superuser holds every permission: no need to read them (two queries) to say so.
    perms = ["*"] if user.is_superuser else sorted(user.get_all_permissions())
    parts = [_templates_digest(), request.get_full_path(), user.pk, perms, fingerprint]
    raw = json.dumps(parts, default=str, separators=(",", ":"))
    return quote_etag(hashlib.sha256(raw.encode()).hexdigest()[:32])


def polled(version):
    """Answer the htmx polls of a view's partial without rendering it when nothing it
    shows has changed. `version(request, *args, **kwargs)` returns (fingerprint, final)
    from a cheap query: any JSON value that changes whenever the partial would (e.g.
    counts, the largest ids and timestamps of its rows, the state), and whether the
    thing is final (its polling stops); it raises as the view would (404). Put it under
    the login and permission decorators: nobody learns a tag, or that nothing changed,
    without being allowed to see the partial. Full page requests go to the view as they
    are.

    The answer to a poll, by what the request says it has:
    - `HX-PTag` equal to the current tag (htmx on this console: static/js/console.js
      sends back the tag of the last answer): 204, which htmx does not swap, or, once
      final, 286 with `HX-Reswap: none` (stop polling, keep what is shown);
    - `If-None-Match` matching it (a browser revalidating its cached copy, any HTTP
      client): 304 Not Modified. Browsers hand a 304 to scripts as a 200 with the cached
      body, which htmx 2 would swap in again (focus, typed text and screen reader
      announcements lost): hence the tag header above;
    - otherwise the view renders; the answer carries the tag as `ETag` and `HX-PTag`,
      with status 286 once final.
    """

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not is_partial(request):
                return view(request, *args, **kwargs)
            fingerprint, final = version(request, *args, **kwargs)
            tag = poll_tag(request, fingerprint)
            if request.headers.get(PTAG_HEADER) == tag:
                response = HttpResponse(status=STOP_POLLING if final else 204)
                if final:
                    response["HX-Reswap"] = "none"
                response["Cache-Control"] = "no-store"
            else:
                # A 304 would leave a final drill polling (the browser turns it into a
                # 200): a final one is answered with 286 and its content.
                response = None if final else get_conditional_response(request, etag=tag)
                if response is None:
                    response = view(request, *args, **kwargs)
                    if response.status_code not in (200, STOP_POLLING):  # an error: no tag
                        return response
                    if final:
                        response.status_code = STOP_POLLING
                response["ETag"] = tag
                # Stored, but used only after the server said it is still current.
                response["Cache-Control"] = "private, no-cache"
            response[PTAG_HEADER] = tag
            patch_vary_headers(response, ["HX-Request"])
            return response

        return wrapper

    return decorator


def not_stored(view):
    """For pages with action buttons: the browser keeps no copy of the page
    (`Cache-Control: no-store`, which also keeps it out of the back/forward cache), so
    Back asks the server again and the page shows only the actions the state allows now.
    htmx partials of the page are left to say their own caching."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        if not is_partial(request):
            add_never_cache_headers(response)
        return response

    return wrapper
