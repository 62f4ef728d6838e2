"""The channels' console pages (admins: list and create, detail with the deliveries,
pause and resume, delete, send a test) and every user's email opt-in."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from notifications import services
from notifications.forms import ChannelForm
from notifications.models import Channel, EmailOptIn

DELIVERIES_SHOWN = 50


def _list_page(request, form, status=200):
    return render(request, "notifications/channel_list.html",
                  {"channels": Channel.objects.all(), "form": form}, status=status)


@login_required
@permission_required(services.MANAGE, raise_exception=True)
@require_GET
def channel_list(request):
    return _list_page(request, ChannelForm(initial={"all_events": True}))


@login_required
@permission_required(services.MANAGE, raise_exception=True)
@require_POST
def channel_create(request):
    form = ChannelForm(request.POST)
    if form.is_valid():
        try:
            channel = services.create_channel(request.user, **form.service_arguments(),
                                              request_id=request.request_id)
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            messages.success(request, f"Channel {channel.name} made.")
            return redirect(channel)
    return _list_page(request, form, status=400)


def _get_channel(pk):
    return get_object_or_404(Channel, pk=pk)


@login_required
@permission_required(services.MANAGE, raise_exception=True)
@require_GET
def channel_detail(request, pk):
    channel = _get_channel(pk)
    deliveries = channel.deliveries.select_related("event").order_by("-id")[:DELIVERIES_SHOWN]
    return render(request, "notifications/channel_detail.html",
                  {"channel": channel, "deliveries": deliveries, "shown": DELIVERIES_SHOWN})


@login_required
@permission_required(services.MANAGE, raise_exception=True)
@require_POST
def channel_enabled(request, pk):
    channel = _get_channel(pk)
    enabled = request.POST.get("enabled") == "true"
    if services.set_enabled(request.user, channel, enabled, request_id=request.request_id):
        messages.success(request, f"Channel {channel.name} {'resumed' if enabled else 'paused'}.")
    return redirect(channel)


@login_required
@permission_required(services.MANAGE, raise_exception=True)
@require_POST
def channel_delete(request, pk):
    channel = _get_channel(pk)
    services.delete_channel(request.user, channel, request_id=request.request_id)
    messages.success(request, f"Channel {channel.name} deleted.")
    return redirect("notifications:list")


@login_required
@permission_required(services.MANAGE, raise_exception=True)
@require_POST
def channel_test(request, pk):
    channel = _get_channel(pk)
    services.send_test(request.user, channel, request_id=request.request_id)
    messages.success(request, "Test message queued: its delivery shows below.")
    return redirect(channel)


@login_required
@permission_required("regions.view_stack", raise_exception=True)
@require_GET
def email_page(request):
    opted_in = EmailOptIn.objects.filter(user=request.user).exists()
    return render(request, "notifications/email.html", {"opted_in": opted_in})


@login_required
@permission_required("regions.view_stack", raise_exception=True)
@require_POST
def email_opt_in(request):
    """Any user with a role asks for the email channels' events, at their address."""
    wanted = request.POST.get("wanted") == "true"
    if wanted and not request.user.email:
        messages.error(request, "Your account has no email address: ask an admin to set one.")
    elif services.set_email_opt_in(request.user, wanted, request_id=request.request_id):
        messages.success(request, "You will get email notifications." if wanted
                         else "You will get no more email notifications.")
    return redirect("notifications:email")
