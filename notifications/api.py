"""The channels' JSON API (admins only): parse the body, call the service."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, JsonResponse

from controlplane.api import BadBody, api_error, api_view, invalid, read_json_object
from controlplane.models import AuditSource
from notifications import services
from notifications.models import Channel

FIELDS = ("name", "kind", "target", "events", "slack")


def _errors(exc):
    return {("non_field_errors" if name == "__all__" else name): messages
            for name, messages in exc.message_dict.items()}


@api_view(["GET", "POST"], permission=services.MANAGE)
def channels(request):
    """GET: every channel (targets masked). POST {"kind", "target", "events": [...] | "all",
    "name"?, "slack"?}: 201 with the channel; 400 with a message per field."""
    if request.method == "GET":
        return JsonResponse({"channels": [services.channel_json(c) for c in Channel.objects.all()]})
    try:
        data = read_json_object(request)
    except BadBody as exc:
        return exc.response()
    unknown = [name[:100] for name in data if name not in FIELDS]
    if unknown:
        return invalid({name: ["Unknown field."] for name in unknown})
    wrong = {name: [f"{name} must be a string."] for name in ("name", "kind", "target")
             if data.get(name) is not None and not isinstance(data[name], str)}
    if "slack" in data and not isinstance(data["slack"], bool):
        wrong["slack"] = ["slack must be true or false."]
    if wrong:
        return invalid(wrong)
    kind, target = data.get("kind") or "", data.get("target") or ""
    name = data.get("name") or f"{kind} {Channel.objects.count() + 1}"
    try:
        channel = services.create_channel(
            request.user, name=name, kind=kind, target=target, events=data.get("events"),
            slack=data.get("slack", False), source=AuditSource.API, request_id=request.request_id,
        )
    except PermissionDenied as exc:
        return api_error(403, str(exc))
    except ValidationError as exc:
        return invalid(_errors(exc))
    response = JsonResponse(services.channel_json(channel), status=201)
    response["Location"] = channel.get_absolute_url()
    return response


@api_view(["DELETE"], permission=services.MANAGE)
def channel(request, pk):
    """DELETE: the channel and its deliveries; 204."""
    found = Channel.objects.filter(pk=pk).first()
    if found is None:
        raise Http404(f"No channel {pk}.")
    try:
        services.delete_channel(request.user, found, source=AuditSource.API, request_id=request.request_id)
    except PermissionDenied as exc:
        return api_error(403, str(exc))
    return HttpResponse(status=204)
