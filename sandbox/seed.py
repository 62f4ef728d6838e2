"""Seed the sandbox's AWS world from the topology, tagged per docs/DISCOVERY.md.

Resources are created in moto's in-process backends, with the arguments moto's own
API handlers pass them (the request shapes of the AWS APIs). That is what keeps
startup under a few seconds: through boto3 and HTTP, the same ~70 calls cost several
seconds of client and response-model loading before anyone uses the sandbox. Everything
seeded is then read and changed through the real AWS APIs on the sandbox endpoint.
Global Accelerator and ARC live in the sandbox's registry (moto has neither).
"""

import base64
import io
import json
import uuid
import zipfile

from sandbox import motostate

APP = "controlplane:application"
REGION = "controlplane:region"
ARCH = "controlplane:architecture"
GLOBAL_URL = "controlplane:global-endpoint-url"
HEALTH_URL = "controlplane:health-url"

FAULT_OFF = {"is_enabled": False, "fault_type": "exception", "delay": 400, "error_code": 503, "rate": 1}
LAMBDA_ROLE = "sandbox-lambda-execution"
FIS_ROLE = "sandbox-fis-experiments"
ARC_CLUSTER_REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1", "ap-southeast-2"]


def _kv(tags):
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def _zip_b64():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("handler.py", "def handler(event, context):\n    return {}\n")
    return base64.b64encode(buf.getvalue()).decode()


class Seeder:
    def __init__(self, world):
        self.world = world
        self.topology = world.topology
        self.registry = world.registry
        self.account = self.topology.account_id

    def backend(self, service, region):
        return motostate.backend(service, self.account, region)

    def run(self):
        with motostate.DATA_LOCK:
            self._run()

    def _run(self):
        iam = motostate.global_backend("iam", self.account)
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"Service": ["lambda.amazonaws.com", "fis.amazonaws.com"]},
                    }
                ],
            }
        )
        self.lambda_role, self.fis_role = (
            iam.create_role(name, trust, "/", None, f"sandbox {name}", [], None).arn
            for name in (LAMBDA_ROLE, FIS_ROLE)
        )
        cluster = self.registry.new_cluster(
            "sandbox-recovery-cluster", self.world.aws_endpoint, ARC_CLUSTER_REGIONS
        )
        for app in self.topology.applications.values():
            panel = self.registry.new_control_panel(cluster, f"{app.name}-control-panel", {APP: app.name})
            for region in app.regions:
                stack = self.registry.stacks[(app.name, region)]
                self.seed_stack(app, region, stack)
                control = self.registry.new_routing_control(
                    panel, f"{app.name}-{region}", {APP: app.name, REGION: region}
                )
                stack.routing_control_arn = control.arn
            if app.architecture == "A":
                self.seed_route53(app)
            else:
                self.seed_accelerator(app)
            self.seed_fis(app)
        motostate.repair_soa_records(self.account)

    # --- per regional stack ------------------------------------------------------------
    def seed_stack(self, app, region, stack):
        tags = {APP: app.name, "owner": app.owner}
        table = self.backend("dynamodb", region).create_table(
            app.table,
            schema=[{"AttributeName": "id", "KeyType": "HASH"}],
            throughput=None,
            attr=[{"AttributeName": "id", "AttributeType": "S"}],
            global_indexes=None,
            indexes=None,
            # The replicator reads each replica's stream, as global tables do.
            streams={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            billing_mode="PAY_PER_REQUEST",
            sse_specification=None,
            tags=_kv(tags),
            deletion_protection_enabled=False,
            warm_throughput=None,
        )
        stack.table_arn = table.table_arn

        self.backend("ssm", region).put_parameter(
            name=app.ssm_parameter(region),
            description=f"chaos_lambda failure injection for {app.name} in {region}",
            value=json.dumps(FAULT_OFF),
            parameter_type="String",
            allowed_pattern=None,
            keyid=None,
            overwrite=False,
            tags=_kv(tags),
            data_type="text",
            tier=None,
            policies=None,
        )
        lam = self.backend("lambda", region)
        code = _zip_b64()
        function_arns = {}
        for fn in app.functions:
            function_arns[fn] = lam.create_function(
                {
                    "FunctionName": fn,
                    "Runtime": "python3.12",
                    "Role": self.lambda_role,
                    "Handler": "handler.handler",
                    "Code": {"ZipFile": code},
                    "Timeout": 10,
                    "MemorySize": 256,
                    "Tags": tags,
                    "Environment": {
                        "Variables": {
                            "TABLE_NAME": app.table,
                            "FAILURE_INJECTION_PARAM": app.ssm_parameter(region),
                        }
                    },
                }
            ).function_arn

        if app.architecture == "A":
            self.seed_api_gateway(app, region, stack, tags, function_arns)
        else:
            self.seed_alb(app, region, stack, tags, function_arns)

        cw = self.backend("cloudwatch", region)
        for alarm in app.alarms:
            if alarm.namespace == "AWS/ApiGateway":
                dims = [{"Name": "ApiName", "Value": f"{app.name}-api"}]
            elif alarm.namespace == "AWS/Lambda":
                dims = [{"Name": "FunctionName", "Value": app.api_function}]
            else:
                dims = [
                    {"Name": "LoadBalancer", "Value": stack.load_balancer_arn.split(":loadbalancer/", 1)[-1]}
                ]
            cw.put_metric_alarm(
                name=f"{app.name}-{region}-{alarm.metric}",
                namespace=alarm.namespace,
                metric_name=alarm.metric,
                comparison_operator="GreaterThanOrEqualToThreshold",
                evaluation_periods=1,
                period=60,
                threshold=alarm.threshold,
                statistic="Sum",
                description=f"{alarm.metric} of {app.name} in {region}",
                dimensions=dims,
                alarm_actions=[],
                treat_missing_data="notBreaching",
                tags=_kv(tags),
            )

    def seed_api_gateway(self, app, region, stack, tags, function_arns):
        apigw = self.backend("apigateway", region)
        api = apigw.create_rest_api(
            f"{app.name}-api",
            f"{app.name} regional API",
            endpoint_configuration={"types": ["REGIONAL"]},
            tags=dict(tags),
        )
        root = next(r.id for r in api.resources.values() if r.path_part == "/" or r.parent_id is None)
        for path, fn in (("health", app.health_function), ("items", app.api_function)):
            res = apigw.create_resource(api.id, root, path)
            apigw.put_method(api.id, res.id, "ANY", "NONE")
            apigw.put_integration(
                api.id,
                res.id,
                "ANY",
                "AWS_PROXY",
                f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/"
                f"{function_arns[fn]}/invocations",
                "POST",
            )
        deployment = apigw.create_deployment(api.id, "", "initial deployment")
        apigw.create_stage(api.id, app.stage, deployment.id, tags={**tags, HEALTH_URL: stack.health_url})
        domain = f"api.{region}.{app.domain}"
        apigw.create_domain_name(
            domain_name=domain,
            certificate_name=None,
            tags=dict(tags),
            certificate_arn=None,
            certificate_body=None,
            certificate_private_key=None,
            certificate_chain=None,
            regional_certificate_name=None,
            regional_certificate_arn=f"arn:aws:acm:{region}:{self.account}:certificate/{uuid.uuid4()}",
            endpoint_configuration={"types": ["REGIONAL"]},
            security_policy="TLS_1_2",
        )
        apigw.create_base_path_mapping(domain, api.id, "(none)", app.stage)
        stack.rest_api_id, stack.stage_name = api.id, app.stage

    def seed_alb(self, app, region, stack, tags, function_arns):
        subnets = self.backend("ec2", region).describe_subnets(filters={"default-for-az": ["true"]})[:2]
        elb = self.backend("elbv2", region)
        lb = elb.create_load_balancer(
            f"{app.name}-alb",
            security_groups=[],
            subnet_ids=[s.id for s in subnets],
            scheme="internet-facing",
            loadbalancer_type="application",
            tags=_kv({**tags, HEALTH_URL: stack.health_url}),
        )
        tg = elb.create_target_group(
            f"{app.name}-lambda",
            vpc_id=None,
            protocol=None,
            port=None,
            target_type="lambda",
            healthcheck_enabled=True,
            healthcheck_path="/health",
            tags=_kv(tags),
        )
        elb.register_targets(tg.arn, [{"Id": function_arns[app.api_function]}])
        listener = elb.create_listener(
            lb.arn, "HTTP", 80, None, None, [{"Type": "forward", "TargetGroupArn": tg.arn}], tags=_kv(tags)
        )
        stack.load_balancer_arn, stack.listener_arn = lb.arn, listener.arn
        stack.target_group_arn = tg.arn

    # --- global resources ---------------------------------------------------------------
    def seed_route53(self, app):
        r53 = motostate.global_backend("route53", self.account)
        zone = r53.create_hosted_zone(
            f"{app.domain}.", private_zone=False, caller_reference=str(uuid.uuid4())
        )
        zone_id = str(next(key for key, value in r53.zones.items() if value is zone))
        r53.change_tags_for_resource(
            "hostedzone",
            zone_id,
            _kv(
                {
                    APP: app.name,
                    ARCH: "A",
                    GLOBAL_URL: self.world.global_endpoint_url(app.name),
                    "owner": app.owner,
                }
            ),
            [],
        )
        changes = []
        for index, region in enumerate(app.regions):
            stack = self.registry.stacks[(app.name, region)]
            hc = r53.create_health_check(
                str(uuid.uuid4()),
                {
                    "ip_address": "127.0.0.1",
                    "port": stack.port,
                    "type": "HTTP",
                    "resource_path": "/health",
                    "fqdn": f"api.{region}.{app.domain}",
                    "request_interval": app.request_interval,
                    "failure_threshold": app.failure_threshold,
                    "children": [],
                    "regions": [],
                },
            )
            stack.health_check_id = hc.id
            r53.change_tags_for_resource(
                "healthcheck",
                hc.id,
                _kv({APP: app.name, REGION: region, "Name": f"{app.name}-{region}-health"}),
                [],
            )
            record = {
                "Name": f"api.{app.domain}.",
                "Type": "CNAME",
                "TTL": 60,
                "SetIdentifier": region,
                "HealthCheckId": hc.id,
                "ResourceRecords": [{"Value": f"api.{region}.{app.domain}"}],
            }
            if app.routing == "failover":
                record["Failover"] = "PRIMARY" if index == 0 else "SECONDARY"
            elif app.routing == "weighted":
                record["Weight"] = 100
            else:
                record["Region"] = region
            changes.append({"Action": "CREATE", "ResourceRecordSet": record})
        r53.change_resource_record_sets(zone_id, changes)
        self.world.hosted_zones[app.name] = zone_id

    def seed_accelerator(self, app):
        reg = self.registry
        with reg.lock:
            acc = reg.new_accelerator(
                f"{app.name}-accelerator",
                {
                    APP: app.name,
                    ARCH: "B",
                    GLOBAL_URL: self.world.global_endpoint_url(app.name),
                    "owner": app.owner,
                },
            )
            listener = reg.new_listener(acc)
            for region in app.regions:
                stack = reg.stacks[(app.name, region)]
                group = reg.new_endpoint_group(
                    listener,
                    region,
                    stack.load_balancer_arn,
                    health_check_port=stack.port,
                    health_check_path="/health",
                    health_check_interval=app.request_interval,
                    threshold_count=app.failure_threshold,
                )
                stack.endpoint_group_arn = group.arn

    def seed_fis(self, app):
        """An experiment template per application: pause replication to its first region."""
        region = app.regions[0]
        self.backend("fis", region).create_experiment_template(
            client_token=str(uuid.uuid4()),
            description=f"Pause {app.name} replication to {region}",
            stop_conditions=[{"source": "none"}],
            targets={
                "Tables": {
                    "resourceType": "aws:dynamodb:global-table",
                    "resourceArns": [self.registry.stacks[(app.name, region)].table_arn],
                    "selectionMode": "ALL",
                }
            },
            actions={
                "PauseReplication": {
                    "actionId": "aws:dynamodb:global-table-pause-replication",
                    "parameters": {"duration": "PT5M"},
                    "targets": {"Tables": "Tables"},
                }
            },
            role_arn=self.fis_role,
            tags={APP: app.name, "Name": f"{app.name}-pause-replication"},
        )
