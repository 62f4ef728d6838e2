"""The sandbox's AWS endpoint: moto's server app, plus the APIs moto lacks.

One WSGI app on one port serves every service, so one `endpoint_url` works for all
boto3 clients. Requests are routed by the service in the SigV4 credential scope of
the Authorization header (…/20260101/us-west-2/globalaccelerator/aws4_request):

- globalaccelerator (JSON 1.1, X-Amz-Target GlobalAccelerator_V20180706.*)
- route53-recovery-control-config (REST-JSON, GET /cluster, /controlpanels, …)
- route53-recovery-cluster (JSON 1.0, X-Amz-Target ToggleCustomerAPI.*)
- route53 GET /2013-04-01/healthcheck/{id}/status: what the sandbox's checkers saw
  (moto's answer is canned)
- dynamodb DescribeTable: moto's answer plus `Replicas` for the sandbox's global
  tables (moto has no global tables)

Everything else goes to moto unchanged.
"""

import io
import json
import re
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from sandbox import motostate
from sandbox.registry import Endpoint

# Route 53 health checkers live in these regions; each reports an observation.
CHECKER_REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
HEALTH_STATUS_PATH = re.compile(r"^/2013-04-01/healthcheck/([^/]+)/status/?$")


class AwsError(Exception):
    def __init__(self, code, message, status=400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


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


def _json_response(start_response, payload, status=200, content_type="application/x-amz-json-1.1"):
    body = json.dumps(payload).encode()
    start_response(
        f"{status} {'OK' if status == 200 else 'Error'}",
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", f"sandbox-{time.time_ns()}"),
        ],
    )
    return [body]


class AwsFront:
    """WSGI app: the extra APIs over the registry, everything else to moto."""

    def __init__(self, world):
        self.world = world
        self.registry = world.registry
        self.moto = DomainDispatcherApplication(create_backend_app)

    def __call__(self, environ, start_response):
        service, _region = _service_from_auth(environ)
        try:
            if service == "globalaccelerator":
                return self._json_target(environ, start_response, self.globalaccelerator, "1.1")
            if service == "route53-recovery-cluster":
                return self._json_target(environ, start_response, self.arc_cluster, "1.0")
            if service == "route53-recovery-control-config":
                return self._arc_config(environ, start_response)
            if service == "route53":
                match = HEALTH_STATUS_PATH.match(environ.get("PATH_INFO", ""))
                if match and environ["REQUEST_METHOD"] == "GET":
                    return self._health_check_status(match.group(1), start_response)
            if service == "dynamodb" and environ.get("HTTP_X_AMZ_TARGET", "").endswith(".DescribeTable"):
                return self._describe_table(environ, start_response, _region)
        except AwsError as exc:
            return _json_response(start_response, {"__type": exc.code, "message": exc.message}, exc.status)
        return self._moto(environ, start_response)

    def _moto(self, environ, start_response):
        # moto's objects are shared with the data plane, which reads them under
        # DATA_LOCK; a request holds it too, so nobody sees a half-applied change.
        with motostate.DATA_LOCK:
            return [b"".join(self.moto(environ, start_response))]

    # --- JSON-protocol services -------------------------------------------------------
    def _json_target(self, environ, start_response, handler, version):
        operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
        params = json.loads(_read_body(environ) or b"{}")
        with self.registry.lock:
            result = handler(operation, params)
        return _json_response(start_response, result, content_type=f"application/x-amz-json-{version}")

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
        raise AwsError("InvalidAction", f"Global Accelerator {op} is not in the sandbox")

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
        raise AwsError("InvalidAction", f"ARC {op} is not in the sandbox")

    def _get_control(self, arn):
        control = self.registry.routing_controls.get(arn)
        if control is None:
            raise AwsError("ResourceNotFoundException", f"Routing control {arn} not found", 404)
        return control

    # --- ARC: recovery control config (REST-JSON) -----------------------------------------
    def _arc_config(self, environ, start_response):
        # REQUEST_URI keeps the ARN's %2F, so the path splits cleanly.
        raw = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ["PATH_INFO"]
        path = raw.split("?", 1)[0]
        parts = [unquote(x) for x in path.strip("/").split("/")]
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        reg = self.registry
        try:
            with reg.lock:
                result = self._arc_config_route(environ["REQUEST_METHOD"], parts, query, reg)
        except AwsError as exc:
            body = json.dumps({"message": exc.message}).encode()
            start_response(
                f"{exc.status} Error",
                [
                    ("Content-Type", "application/json"),
                    ("x-amzn-ErrorType", exc.code),
                    ("Content-Length", str(len(body))),
                ],
            )
            return [body]
        return _json_response(start_response, result, content_type="application/json")

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

    # --- Route 53 GetHealthCheckStatus ----------------------------------------------------
    def _health_check_status(self, health_check_id, start_response):
        obs = self.registry.observations.get(health_check_id)
        if obs is None:
            body = (
                '<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/'
                '2013-04-01/"><Error><Type>Sender</Type><Code>NoSuchHealthCheck</Code>'
                f"<Message>No health check with id {escape(health_check_id)}</Message></Error>"
                "</ErrorResponse>"
            ).encode()
            start_response(
                "404 Not Found", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))]
            )
            return [body]
        checked = datetime.fromtimestamp(obs.checked_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        observations = "".join(
            f"<HealthCheckObservation><Region>{r}</Region><IPAddress>127.0.0.1</IPAddress>"
            f"<StatusReport><Status>{escape(obs.status)}</Status>"
            f"<CheckedTime>{checked}</CheckedTime></StatusReport></HealthCheckObservation>"
            for r in CHECKER_REGIONS
        )
        body = (
            '<?xml version="1.0"?>\n<GetHealthCheckStatusResponse '
            'xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><HealthCheckObservations>'
            f"{observations}</HealthCheckObservations></GetHealthCheckStatusResponse>"
        ).encode()
        start_response("200 OK", [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))])
        return [body]

    # --- DynamoDB DescribeTable: add the global table's replicas --------------------------
    def _describe_table(self, environ, start_response, region):
        name = json.loads(_read_body(environ) or b"{}").get("TableName", "")
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers

        body = b"".join(self._moto(environ, capture))
        replicas = self.world.replicas_of(name, region)
        if not captured["status"].startswith("200") or not replicas:
            start_response(captured["status"], captured["headers"])
            return [body]
        payload = json.loads(body)
        payload["Table"]["GlobalTableVersion"] = "2019.11.21"
        payload["Table"]["Replicas"] = replicas
        return _json_response(start_response, payload, content_type="application/x-amz-json-1.0")
