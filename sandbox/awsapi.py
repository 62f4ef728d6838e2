"""The sandbox's AWS endpoint: moto's server app, plus the APIs moto lacks.

One WSGI app on one port serves every service, so one `endpoint_url` works for all
boto3 clients. Requests are routed by the service in the SigV4 credential scope of
the Authorization header (…/20260101/us-west-2/globalaccelerator/aws4_request):

- globalaccelerator (JSON 1.1, X-Amz-Target GlobalAccelerator_V20180706.*), in
  us-west-2 only, as AWS serves it
- route53-recovery-control-config (REST-JSON, GET /cluster, /controlpanels, …), in
  us-west-2 only
- route53-recovery-cluster (JSON 1.0, X-Amz-Target ToggleCustomerAPI.*)
- route53 GetHealthCheckStatus, GetHealthCheckLastFailureReason, GetHealthCheckCount:
  what the sandbox's checkers saw (sandbox/route53api.py; moto's status is canned)
- dynamodb ListGlobalTables, DescribeGlobalTable, DescribeTableReplicaAutoScaling
  (sandbox/globaltables.py), and DescribeTable: moto's answer plus `Replicas` for the
  sandbox's global tables (moto has no global tables)

Everything else goes to moto, and two of its answers are mended on the way back:
lambda GetFunction gains the `Concurrency` moto leaves out when it is 0, and a new
hosted zone's SOA record gets its value as text. What moto does not implement is
answered with AWS's error for an unknown operation, in the service's protocol
(sandbox/awserrors.py), never with moto's HTML 500 that clients retry.
"""

import io
import json
import logging
import re
import time
from urllib.parse import parse_qs, unquote

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from sandbox import awserrors, globaltables, motostate, route53api
from sandbox.awserrors import AwsError
from sandbox.registry import Endpoint

log = logging.getLogger("sandbox")

# AWS serves these APIs from one region; elsewhere their endpoint does not exist. The
# sandbox plays that one regional endpoint, which refuses a request signed for another
# region (botocore would otherwise report a connection error, which clients retry).
HOME_REGIONS = {"globalaccelerator": "us-west-2", "route53-recovery-control-config": "us-west-2"}
LAMBDA_FUNCTION_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/?$")
HOSTED_ZONES_PATH = re.compile(r"^/2013-04-01/hostedzone/?$")


def _service_from_auth(environ):
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        scope = auth.split("Credential=", 1)[1].split(",", 1)[0]
        _, _, region, service, _ = scope.split("/")
    except (IndexError, ValueError):
        return None, None
    return service, region


def _read_body(environ):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)  # moto may read it again
    return body


def _json(payload, content_type):
    body = json.dumps(payload).encode()
    headers = [
        ("Content-Type", content_type),
        ("Content-Length", str(len(body))),
        ("x-amzn-RequestId", f"sandbox-{time.time_ns()}"),
    ]
    return "200 OK", headers, body


def _xml(body):
    headers = [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))]
    return "200 OK", headers, body


def _without_nulls(value):
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _error(service, environ, error):
    """An error of a service the sandbox answers itself, in that service's protocol."""
    return awserrors.render(awserrors.service_model(service) if service else None, environ, error)


class AwsFront:
    """WSGI app: the extra APIs over the registry, everything else to moto."""

    def __init__(self, world):
        self.world = world
        self.registry = world.registry
        self.account_id = world.topology.account_id
        self.moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ, start_response):
        service, region = _service_from_auth(environ)
        body = _read_body(environ)
        try:
            status, headers, payload = self._route(service, region, environ, body)
        except json.JSONDecodeError:
            status, headers, payload = _error(
                service, environ, AwsError("SerializationException", "the request body is not valid JSON")
            )
        except KeyError as exc:  # a parameter the operation requires (botocore checks it first)
            status, headers, payload = _error(
                service, environ, AwsError("ValidationException", f"missing required parameter {exc}")
            )
        except AwsError as exc:
            status, headers, payload = _error(service, environ, exc)
        start_response(status, headers)
        return [payload]

    def _route(self, service, region, environ, body):
        home = HOME_REGIONS.get(service)
        if home and region != home:
            raise AwsError(
                "InvalidSignatureException",
                f"Credential should be scoped to a valid region. {service} is served from {home} only, "
                f"not {region}.",
            )
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
        if service == "globalaccelerator":
            return self._json_target(body, self.globalaccelerator, "1.1", operation)
        if service == "route53-recovery-cluster":
            return self._json_target(body, self.arc_cluster, "1.0", operation)
        if service == "route53-recovery-control-config":
            return self._arc_config(environ)
        if service == "route53" and route53api.route(method, path):
            return _xml(route53api.answer(self.world, *route53api.route(method, path)))
        if service == "dynamodb" and operation in globaltables.OPERATIONS:
            payload = globaltables.OPERATIONS[operation](self.world, region, json.loads(body or b"{}"))
            return _json(payload, "application/x-amz-json-1.0")
        status, headers, payload = self._moto(environ, body)
        if not status.startswith("2"):
            return status, headers, payload
        if service == "dynamodb" and operation == "DescribeTable":
            return self._describe_table(payload, region)
        if service == "lambda" and method == "GET" and LAMBDA_FUNCTION_PATH.match(path):
            return self._get_function(payload, region)
        if service == "route53" and method == "POST" and HOSTED_ZONES_PATH.match(path):
            with motostate.DATA_LOCK:
                motostate.repair_soa_records(self.account_id)
        return status, headers, payload

    def _moto(self, environ, body):
        """moto's (status, headers, body); an operation it lacks as AWS's unknown-operation
        error, and its crashes as AWS's InternalFailure, both in the service's protocol."""
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        # moto's objects are shared with the data plane, which reads them under
        # DATA_LOCK; a request holds it too, so nobody sees a half-applied change.
        with motostate.DATA_LOCK:
            try:
                payload = b"".join(self.moto(environ, capture))
                error = None
            except NotImplementedError:
                error = "unsupported"
            except Exception as exc:  # moto's Flask apps run in debug mode: errors propagate
                log.exception("moto failed on %s %s", environ["REQUEST_METHOD"], environ.get("PATH_INFO"))
                error = AwsError(
                    "InternalFailure", f"the sandbox's moto failed: {type(exc).__name__}: {exc}", 500
                )
        if error is None and self._unrouted(environ, captured, payload):
            error = "unsupported"
        if error is None:
            return captured["status"], captured["headers"], payload
        environ["wsgi.input"] = io.BytesIO(body)
        model = awserrors.service_model(self.moto.get_application(environ).service, environ, body)
        if error == "unsupported":
            error = awserrors.unsupported(model, environ, body)
        return awserrors.render(model, environ, error)

    @staticmethod
    def _unrouted(environ, captured, payload):
        """moto's answer to a path none of its routes match: a bare or HTML 404."""
        if not captured["status"].startswith("404") or environ["REQUEST_METHOD"] == "HEAD":
            return False
        content_type = dict(captured["headers"]).get("Content-Type", "")
        return not payload.strip() or content_type.startswith("text/html")

    # --- JSON-protocol services -------------------------------------------------------
    def _json_target(self, body, handler, version, operation):
        params = json.loads(body or b"{}")
        with self.registry.lock:
            result = handler(operation, params)
        return _json(result, f"application/x-amz-json-{version}")

    # --- Global Accelerator -------------------------------------------------------------
    def globalaccelerator(self, op, p):
        reg = self.registry
        if op == "ListAccelerators":
            return {"Accelerators": [self._accelerator(a) for a in reg.accelerators.values()]}
        if op == "DescribeAccelerator":
            return {"Accelerator": self._accelerator(self._get_accelerator(p["AcceleratorArn"]))}
        if op == "ListListeners":
            acc = self._get_accelerator(p["AcceleratorArn"])
            return {"Listeners": [self._listener(x) for x in acc.listeners]}
        if op == "DescribeListener":
            found = reg.find_listener(p["ListenerArn"])
            if not found:
                raise AwsError("ListenerNotFoundException", "Listener not found")
            return {"Listener": self._listener(found[1])}
        if op == "ListEndpointGroups":
            found = reg.find_listener(p["ListenerArn"])
            if not found:
                raise AwsError("ListenerNotFoundException", "Listener not found")
            return {"EndpointGroups": [self._endpoint_group(g) for g in found[1].endpoint_groups]}
        if op == "DescribeEndpointGroup":
            return {"EndpointGroup": self._endpoint_group(self._get_group(p["EndpointGroupArn"]))}
        if op == "UpdateEndpointGroup":
            return {"EndpointGroup": self._endpoint_group(self._update_group(p))}
        if op == "ListTagsForResource":
            acc = reg.accelerators.get(p["ResourceArn"])
            tags = acc.tags if acc else {}
            return {"Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        if op == "TagResource":
            acc = self._get_accelerator(p["ResourceArn"])
            acc.tags.update({t["Key"]: t["Value"] for t in p.get("Tags", [])})
            return {}
        raise AwsError(
            "UnknownOperationException", f"Global Accelerator {op} is not supported by the sandbox"
        )

    def _get_accelerator(self, arn):
        acc = self.registry.accelerators.get(arn)
        if acc is None:
            raise AwsError("AcceleratorNotFoundException", f"Accelerator {arn} not found")
        return acc

    def _get_group(self, arn):
        found = self.registry.find_endpoint_group(arn)
        if not found:
            raise AwsError("EndpointGroupNotFoundException", f"Endpoint group {arn} not found")
        return found[2]

    def _update_group(self, p):
        group = self._get_group(p["EndpointGroupArn"])
        if "TrafficDialPercentage" in p:
            dial = float(p["TrafficDialPercentage"])
            if not 0 <= dial <= 100:
                raise AwsError("InvalidArgumentException", "TrafficDialPercentage out of range")
            group.traffic_dial = dial
        if "EndpointConfigurations" in p:
            # As in AWS, the list replaces the group's endpoints.
            group.endpoints = [
                Endpoint(
                    c["EndpointId"],
                    int(c.get("Weight", 128)),
                    bool(c.get("ClientIPPreservationEnabled", True)),
                )
                for c in p["EndpointConfigurations"]
            ]
        for key, attr in (
            ("HealthCheckPort", "health_check_port"),
            ("HealthCheckProtocol", "health_check_protocol"),
            ("HealthCheckPath", "health_check_path"),
            ("HealthCheckIntervalSeconds", "health_check_interval"),
            ("ThresholdCount", "threshold_count"),
        ):
            if key in p:
                setattr(group, attr, p[key])
        return group

    def _accelerator(self, acc):
        return {
            "AcceleratorArn": acc.arn,
            "Name": acc.name,
            "IpAddressType": "IPV4",
            "Enabled": acc.enabled,
            "IpSets": [{"IpFamily": "IPv4", "IpAddresses": acc.ip_addresses, "IpAddressFamily": "IPv4"}],
            "DnsName": acc.dns_name,
            "Status": "DEPLOYED",
            "CreatedTime": acc.created,
            "LastModifiedTime": acc.created,
        }

    def _listener(self, listener):
        return {
            "ListenerArn": listener.arn,
            "PortRanges": [{"FromPort": listener.port, "ToPort": listener.port}],
            "Protocol": listener.protocol,
            "ClientAffinity": "NONE",
        }

    def _endpoint_group(self, group):
        descriptions = []
        for ep in group.endpoints:
            obs = self.registry.observations.get(ep.endpoint_id)
            if obs is None:
                state, reason = "INITIAL", ""
            elif obs.healthy:
                state, reason = "HEALTHY", ""
            else:
                state, reason = "UNHEALTHY", obs.status
            descriptions.append(
                {
                    "EndpointId": ep.endpoint_id,
                    "Weight": ep.weight,
                    "HealthState": state,
                    "HealthReason": reason,
                    "ClientIPPreservationEnabled": ep.client_ip_preservation,
                }
            )
        return {
            "EndpointGroupArn": group.arn,
            "EndpointGroupRegion": group.region,
            "EndpointDescriptions": descriptions,
            "TrafficDialPercentage": group.traffic_dial,
            "HealthCheckPort": group.health_check_port,
            "HealthCheckProtocol": group.health_check_protocol,
            "HealthCheckPath": group.health_check_path,
            "HealthCheckIntervalSeconds": group.health_check_interval,
            "ThresholdCount": group.threshold_count,
            "PortOverrides": [],
        }

    # --- ARC: routing control data plane (route53-recovery-cluster) -------------------------
    def arc_cluster(self, op, p):
        reg = self.registry
        if op == "GetRoutingControlState":
            control = self._get_control(p["RoutingControlArn"])
            return {
                "RoutingControlArn": control.arn,
                "RoutingControlState": control.state,
                "RoutingControlName": control.name,
            }
        if op == "ListRoutingControls":
            panel_arn = p.get("ControlPanelArn")
            return {
                "RoutingControls": [
                    {
                        "ControlPanelArn": c.control_panel_arn,
                        "ControlPanelName": reg.control_panels[c.control_panel_arn].name,
                        "RoutingControlArn": c.arn,
                        "RoutingControlName": c.name,
                        "RoutingControlState": c.state,
                        "Owner": reg.account_id,
                    }
                    for c in reg.routing_controls.values()
                    if not panel_arn or c.control_panel_arn == panel_arn
                ]
            }
        if op in ("UpdateRoutingControlState", "UpdateRoutingControlStates"):
            entries = p.get("UpdateRoutingControlStateEntries") or [p]
            controls = [(self._get_control(e["RoutingControlArn"]), e) for e in entries]
            for _control, entry in controls:
                if entry.get("RoutingControlState") not in ("On", "Off"):
                    raise AwsError("ValidationException", "RoutingControlState must be On or Off")
            for control, entry in controls:  # all or nothing, as the real API
                control.state = entry["RoutingControlState"]
            return {}
        raise AwsError("UnknownOperationException", f"ARC {op} is not supported by the sandbox")

    def _get_control(self, arn):
        control = self.registry.routing_controls.get(arn)
        if control is None:
            raise AwsError("ResourceNotFoundException", f"Routing control {arn} not found", 404)
        return control

    # --- ARC: recovery control config (REST-JSON) -----------------------------------------
    def _arc_config(self, environ):
        # REQUEST_URI keeps the ARN's %2F, so the path splits cleanly.
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ["PATH_INFO"]
        path = raw.split("?", 1)[0]
        parts = [unquote(x) for x in path.strip("/").split("/")]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        with self.registry.lock:
            result = self._arc_config_route(environ["REQUEST_METHOD"], parts, query, self.registry)
        return _json(result, "application/json")

    def _arc_config_route(self, method, parts, query, reg):
        def cluster(c):
            return {
                "ClusterArn": c.arn,
                "ClusterEndpoints": c.endpoints,
                "Name": c.name,
                "Status": "DEPLOYED",
                "Owner": reg.account_id,
                "NetworkType": "IPV4",
            }

        def panel(x):
            count = sum(1 for c in reg.routing_controls.values() if c.control_panel_arn == x.arn)
            return {
                "ClusterArn": x.cluster_arn,
                "ControlPanelArn": x.arn,
                "DefaultControlPanel": False,
                "Name": x.name,
                "RoutingControlCount": count,
                "Status": "DEPLOYED",
                "Owner": reg.account_id,
            }

        def control(c):
            return {
                "ControlPanelArn": c.control_panel_arn,
                "Name": c.name,
                "RoutingControlArn": c.arn,
                "Status": "DEPLOYED",
                "Owner": reg.account_id,
            }

        def get(mapping, arn, kind):
            if arn not in mapping:
                raise AwsError("ResourceNotFoundException", f"{kind} {arn} not found", 404)
            return mapping[arn]

        if method != "GET":
            raise AwsError("ValidationException", "the sandbox's ARC config API is read-only")
        head, rest = parts[0], parts[1:]
        if head == "cluster" and not rest:
            return {"Clusters": [cluster(c) for c in reg.clusters.values()]}
        if head == "cluster":
            return {"Cluster": cluster(get(reg.clusters, "/".join(rest), "Cluster"))}
        if head == "controlpanels":
            wanted = query.get("ClusterArn")
            return {
                "ControlPanels": [
                    panel(x) for x in reg.control_panels.values() if not wanted or x.cluster_arn == wanted
                ]
            }
        if head == "controlpanel" and rest and rest[-1] == "routingcontrols":
            arn = "/".join(rest[:-1])
            get(reg.control_panels, arn, "Control panel")
            return {
                "RoutingControls": [
                    control(c) for c in reg.routing_controls.values() if c.control_panel_arn == arn
                ]
            }
        if head == "controlpanel":
            return {"ControlPanel": panel(get(reg.control_panels, "/".join(rest), "Control panel"))}
        if head == "routingcontrol":
            arn = "/".join(rest)
            return {"RoutingControl": control(get(reg.routing_controls, arn, "Routing control"))}
        if head == "tags":
            arn = "/".join(rest)
            for mapping in (reg.clusters, reg.control_panels, reg.routing_controls):
                if arn in mapping:
                    return {"Tags": mapping[arn].tags}
            raise AwsError("ResourceNotFoundException", f"{arn} not found", 404)
        raise AwsError("ValidationException", f"unknown path /{'/'.join(parts)}")

    # --- moto's answers, mended ------------------------------------------------------------
    def _describe_table(self, payload, region):
        """DescribeTable plus the global table's replicas, which moto does not know."""
        described = json.loads(payload)
        replicas = self.world.replicas_of(described["Table"]["TableName"], region)
        if replicas:
            described["Table"]["GlobalTableVersion"] = "2019.11.21"
            described["Table"]["Replicas"] = replicas
        return _json(described, "application/x-amz-json-1.0")

    def _get_function(self, payload, region):
        """GetFunction with `Concurrency` when reserved concurrency is 0: moto omits it
        (it tests the value for truth), and a throttled function then looks unlimited.
        Members moto sends as null are left out, as AWS leaves out what is not set."""
        described = _without_nulls(json.loads(payload))
        if "Concurrency" not in described:
            name = described["Configuration"]["FunctionName"]
            with motostate.DATA_LOCK:
                reserved = motostate.reserved_concurrency(self.account_id, region, name)
            if reserved is not None:
                described["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
        return _json(described, "application/json")
