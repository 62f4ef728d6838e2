"""Bearer-token authentication for the JSON API (`Authorization: Bearer TOKEN`)."""

import functools
import hashlib
import secrets

from django.http import JsonResponse
from django.utils import timezone

from controlplane.models import ApiToken

TOKEN_PREFIX = "cp_"  # noqa: S105 - a visible marker, not a secret


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(user, name=""):
    """Create a token for `user`; return (ApiToken, the plaintext shown once)."""
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, prefix=plaintext[:12], digest=hash_token(plaintext)
    )
    return token, plaintext


def api_error(status, message, **extra):
    return JsonResponse({"error": message, **extra}, status=status)


def authenticate_bearer(request):
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    token = (
        ApiToken.objects.select_related("user")
        .filter(digest=hash_token(value.strip()), revoked_at__isnull=True)
        .first()
    )
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user


def api_view(methods, permission=None):
    """Authenticate by bearer token (or the console session), check the method and
    the role permission. Answers 401/403/405 as JSON; never redirects."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            user = authenticate_bearer(request)
            if user is None and request.user.is_authenticated:
                user = request.user
            if user is None:
                response = api_error(401, "Authentication required: send Authorization: Bearer TOKEN.")
                response["WWW-Authenticate"] = 'Bearer realm="controlplane"'
                return response
            request.user = user
            if request.method not in methods:
                response = api_error(405, f"Method {request.method} not allowed.")
                response["Allow"] = ", ".join(methods)
                return response
            if permission and not user.has_perm(permission):
                return api_error(403, "Your role does not allow this action.")
            return view(request, *args, **kwargs)

        wrapper.csrf_exempt = True  # token-authenticated; no cookies involved
        wrapper.api_methods = methods
        wrapper.api_permission = permission
        return wrapper

    return decorator
