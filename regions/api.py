from datetime import timedelta

from django.conf import settings
from django.db.models import F, Window
from django.db.models.functions import RowNumber
from django.http import JsonResponse
from django.utils import timezone

from controlplane.api import api_view
from regions import inventory as inventory_lib
from regions import monitoring
from regions.models import LagSample


@api_view(["GET"], permission="regions.view_stack")
def inventory(request):
    """The whole inventory in the import format (applications, regions, stacks); the
    regions' role ARN and external id only for admins, as the console's export."""
    with_access = request.user.has_perm(inventory_lib.ACCESS_PERMISSION)
    return JsonResponse(inventory_lib.export_inventory(with_access=with_access))


def _iso(when):
    return when.isoformat() if when else None


def _verdict(verdict):
    return {"status": verdict.status.value, "reason": verdict.reason}


def _health(verdict):
    sample = verdict.last_sample
    return {
        **_verdict(verdict),
        "last_sample_at": _iso(sample.at) if sample else None,
        "status_code": sample.status_code if sample else None,
        "latency_ms": sample.latency_ms if sample else None,
    }


def _latest_lags(app_ids, now):
    """{application id: [lag dict, ...]}: the latest sample per (source, receiving) pair,
    whatever its method, among those of the last 2 x CONTROLPLANE_LAG_STALE_SECONDS (the
    horizon the status loader reads). One query."""
    since = now - timedelta(seconds=settings.CONTROLPLANE_LAG_STALE_SECONDS * 2)
    rows = (
        LagSample.objects.filter(application_id__in=app_ids, at__gte=since, at__lte=now)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("application_id"), F("source_region"), F("receiving_region")],
                order_by=F("at").desc(),
            )
        )
        .filter(rank=1)
        .values_list(
            "application_id", "source_region", "receiving_region", "lag_ms", "method", "at", "replicated"
        )
    )
    lags = {}
    for app_id, source, receiving, lag_ms, method, at, replicated in rows:
        lags.setdefault(app_id, []).append({
            "source_region": source,
            "receiving_region": receiving,
            "lag_seconds": round(lag_ms / 1000, 3) if lag_ms is not None else None,
            "method": method,
            "at": _iso(at),
            "replicated": replicated,
        })
    for pairs in lags.values():
        pairs.sort(key=lambda lag: (lag["receiving_region"], lag["source_region"]))
    return lags


@api_view(["GET"], permission="regions.view_stack")
def status(request):
    """Every application's computed status, its regions with their effective routing,
    drift findings, and the latest replication lag per region pair. Six queries (plus
    authentication) whatever the inventory holds: the status loader's five
    (monitoring.load_picture) and the latest lags."""
    now = timezone.now()
    pictures = monitoring.load_picture(now)
    lags = _latest_lags(list(pictures), now)
    applications = []
    for pk, picture in pictures.items():
        app_status = picture.status
        applications.append({
            "name": picture.name,
            "architecture": picture.architecture,
            "status": app_status.status.value,
            "reason": app_status.reason,
            "served_region": app_status.served_region or None,
            "global_endpoint": _verdict(app_status.global_endpoint) if app_status.global_endpoint else None,
            "regions": [
                {
                    "region": region.region,
                    "status": region.status.value,
                    "reason": region.reason,
                    "in_rotation": region.in_rotation,
                    "receives_traffic": routing.receives_traffic if routing else None,
                    "routing_reason": routing.reason if routing else "routing not observed yet",
                    "health": _health(region.health),
                    "replication": _verdict(region.replication),
                }
                for region in app_status.regions
                for routing in [picture.routing.get(region.region)]
            ],
            "lag": lags.get(pk, []),
            "drift": [finding.as_dict() for finding in picture.drift],
        })
    response = JsonResponse({"generated_at": now.isoformat(), "applications": applications})
    response["Cache-Control"] = "no-store"
    return response
