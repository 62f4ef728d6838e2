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


def _replication(verdict):
    """Replication into a region: the verdict and the figure behind it (None: not measured)."""
    lag = verdict.lag
    return {
        **_verdict(verdict),
        "lag_seconds": round(verdict.lag_seconds, 3) if verdict.lag_seconds is not None else None,
        "source_region": lag.source_region if lag else None,
        "method": lag.method if lag else None,
        "at": _iso(lag.at) if lag else None,
    }


@api_view(["GET"], permission="regions.view_stack")
def status(request):
    """Every application's computed status, its regions with their routing (as the
    clients see it, and the source of that fact) and replication lag, drift findings, the
    drills changing it now, each region's drill freshness (its last passed drill and
    that drill's age), and the current replication lag per region pair (what the status
    reads: stale pairs left out): what every console page shows, from the same loader
    (monitoring.load_picture; its seven queries, plus authentication, whatever the
    inventory holds)."""
    now = timezone.now()
    applications = []
    for picture in monitoring.load_picture(now, freshness=True).values():
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
                    "region": here.region,
                    "status": here.status.status.value,
                    "reason": here.status.reason,
                    "in_rotation": here.status.in_rotation,
                    "receives_traffic": here.routing.receives_traffic if here.routing else None,
                    "routing_reason": here.routing.reason if here.routing else "routing not observed yet",
                    "routing_source": here.routing.source if here.routing else None,
                    "health": _health(here.status.health),
                    "replication": _replication(here.status.replication),
                    "drill_freshness": here.freshness.as_dict(),
                }
                for here in picture.regions()
            ],
            "lag": sorted((_lag(lag) for lag in picture.lags),
                          key=lambda lag: (lag["receiving_region"], lag["source_region"])),
            "drift": [finding.as_dict() for finding in picture.drift],
            "drills": [drill.as_dict() for drill in picture.drills],
        })
    response = JsonResponse({"generated_at": now.isoformat(), "applications": applications})
    response["Cache-Control"] = "no-store"
    return response
