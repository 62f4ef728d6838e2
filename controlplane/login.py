"""Sign-in throttling with django-axes (settings: AXES_*, docs/OPERATIONS.md).

Axes counts failed sign-ins per username and per client address; at
settings.AXES_FAILURE_LIMIT for either, it refuses that username (from anywhere) or that
address (for any username) for settings.AXES_COOLOFF_TIME, the right password included.
Its backend sits first in AUTHENTICATION_BACKENDS, so every password check through
`django.contrib.auth.authenticate(request, ...)` is covered: the console's login form
and the admin's. The one password check outside `authenticate()`, the admin's "change my
password" (its old password), is wrapped by `throttle_password_change`.

This module gives axes what is ours: the client address (`client_ip`, honouring
CONTROLPLANE_TRUSTED_PROXY_COUNT), the page a locked-out sign-in gets
(`lockout_response`: the login page with the reason, status 429), and the audit event of
each lockout (`record_lockout`, connected to axes' `user_locked_out` signal: axes has no
other hook). Unlocking is `manage.py unlock_login`, which is audited too.
"""

import ipaddress

from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.signals import user_login_failed
from django.db.models import Sum
from django.dispatch import receiver
from django.shortcuts import render
from django.urls import reverse

from controlplane import audit
from controlplane.models import AuditSource


def _valid_ip(value):
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def client_ip(request):
    """The address per-address throttling counts (AXES_CLIENT_IP_CALLABLE).

    REMOTE_ADDR; behind CONTROLPLANE_TRUSTED_PROXY_COUNT proxies that each append the
    address they saw to X-Forwarded-For, the entry the outermost trusted proxy appended
    (entries left of it are the client's to write, so they are not believed)."""
    remote = request.META.get("REMOTE_ADDR", "")
    count = settings.CONTROLPLANE_TRUSTED_PROXY_COUNT
    if count:
        forwarded = [a for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if len(forwarded) >= count:
            address = _valid_ip(forwarded[-count])
            if address:
                return address
    return _valid_ip(remote) or remote


def cool_off_minutes():
    return max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))


def lockout_message():
    minutes = cool_off_minutes()
    return (
        "Too many failed sign-ins for this username or from this address: signing in is "
        f"locked for {minutes} minute{'s' if minutes != 1 else ''}. Try again later, or ask "
        "an admin to unlock it (manage.py unlock_login)."
    )


def lockout_response(request, original_response=None, credentials=None):
    """The login page again, saying why, with status 429 and Retry-After
    (AXES_LOCKOUT_CALLABLE). The form is unbound: validating it would check the
    password again and count another failure."""
    username = ""
    if credentials:
        username = credentials.get("username") or ""
    username = str(username or request.POST.get("username", ""))[:150]
    context = {
        "form": AuthenticationForm(request, initial={"username": username}),
        "lockout": lockout_message(),
        "next": request.POST.get("next", request.GET.get("next", "")),
    }
    response = render(request, "registration/login.html", context, status=429)
    response["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return response


def _failures(**lookup):
    total = AccessAttempt.objects.filter(**lookup).aggregate(n=Sum("failures_since_start"))["n"]
    return total or 0


@receiver(user_locked_out, dispatch_uid="controlplane.login.record_lockout")
def record_lockout(sender, request, username, ip_address, **kwargs):
    """Audit a new lockout (`auth.lockout`). Axes sends the signal again for each attempt
    refused during a lockout; those carry no failure count and are not recorded (axes
    keeps them in its own counters)."""
    if getattr(request, "axes_failures_since_start", None) is None:
        return
    limit = settings.AXES_FAILURE_LIMIT
    username = str(username or "")[:150]
    by_username = _failures(username=username) if username else 0
    from_address = _failures(ip_address=ip_address) if ip_address else 0
    locked = [
        name
        for name, count in (("username", by_username), ("ip_address", from_address))
        if count >= limit
    ]
    user = get_user_model().objects.filter(username=username).first() if username else None
    admin = request.path.startswith(reverse("admin:index"))
    audit.record(
        "anonymous",
        "auth.lockout",
        source=AuditSource.ADMIN if admin else AuditSource.CONSOLE,
        obj=user,
        object_type="auth.user",
        object_repr=username or "(no username)",
        after={
            "username": username,
            "ip_address": ip_address,
            "locked": locked,
            "failures_for_username": by_username,
            "failures_from_address": from_address,
            "failure_limit": limit,
            "cool_off_minutes": cool_off_minutes(),
        },
        request_id=getattr(request, "request_id", ""),
    )


def throttle_password_change(site):
    """Count `site`'s "change my password" page like a sign-in: its old-password check is
    outside `authenticate()`, so a wrong one is reported to axes as a failed sign-in
    (`user_login_failed`, with the request), and a locked username or address gets the
    lockout page instead of another guess. Called once for the admin site
    (controlplane/admin.py), before its URLs are built."""
    view = site.password_change

    def password_change(request, extra_context=None):
        credentials = {"username": request.user.get_username()}
        if request.method == "POST" and not AxesProxyHandler.is_allowed(request, credentials):
            return lockout_response(request, credentials=credentials)
        response = view(request, extra_context)
        form = (getattr(response, "context_data", None) or {}).get("form")
        if request.method == "POST" and form is not None and "old_password" in form.errors:
            user_login_failed.send(sender=__name__, credentials=credentials, request=request)
        return response

    site.password_change = password_change
