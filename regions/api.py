from django.http import JsonResponse
from django.utils import timezone

from controlplane.api import api_view
from regions import inventory as inventory_lib
from regions import monitoring


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


def _lag(lag):
    """One current lag (status.current_lags) as the API shows it."""
    return {
        "source_region": lag.source_region,
        "receiving_region": lag.receiving_region,
        "lag_seconds": round(lag.lag_ms / 1000, 3) if lag.lag_ms is not None else None,
        "method": lag.method,
        "at": _iso(lag.at),
        "replicated": lag.replicated,
    }


@api_view(["GET"], permission="regions.view_stack")
def status(request):
    """Every application's computed status, its regions with their effective routing,
    drift findings, and the current replication lag per region pair (what the status
    reads: stale pairs left out). The status loader's queries (monitoring.load_picture)
    plus authentication, whatever the inventory holds."""
    now = timezone.now()
    pictures = monitoring.load_picture(now)
    applications = []
    for picture in pictures.values():
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
                    "routing_source": routing.source if routing else None,
                    "health": _health(region.health),
                    "replication": _verdict(region.replication),
                }
                for region in app_status.regions
                for routing in [picture.routing.get(region.region)]
            ],
            "lag": sorted((_lag(lag) for lag in picture.lags),
                          key=lambda lag: (lag["receiving_region"], lag["source_region"])),
            "drift": [finding.as_dict() for finding in picture.drift],
        })
    response = JsonResponse({"generated_at": now.isoformat(), "applications": applications})
    response["Cache-Control"] = "no-store"
    return response
