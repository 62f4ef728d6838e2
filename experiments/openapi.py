"""OpenAPI 3.1 description of the drills API (experiments.api), in the style of
controlplane/openapi.py: `PATHS` and `SCHEMAS` are merged into the served document
(`DOCUMENT["paths"] |= PATHS`, `DOCUMENT["components"]["schemas"] |= SCHEMAS`).
References point at `#/components/schemas/<name>`; "Error" is the shared error schema
of controlplane.openapi (repeated here so this module validates on its own)."""

from controlplane.openapi_schema import DATE_TIME
from controlplane.openapi_schema import json_body as _body
from controlplane.openapi_schema import json_response as _json
from controlplane.openapi_schema import nullable as _nullable
from controlplane.openapi_schema import obj as _object
from controlplane.openapi_schema import ref as _ref
from experiments.api import (
    ABORT_REQUEST,
    DECISION,
    DRILL_REQUEST,
    HALT_REQUEST,
    REJECTION,
    SCHEDULE_DECISION,
    SCHEDULE_PROPOSAL,
    SCHEDULE_SWITCH,
)
from experiments.faults import FaultKind
from experiments.gamedays import MAX_PAUSE_SECONDS, MAX_STEPS
from experiments.models import LIVE_STATES, DrillState, GameDayState, ScheduleState, StepKind
from regions.models import Architecture

SECONDS = _nullable({"type": "number", "minimum": 0})
HASH = {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256 of the canonical plan JSON."}
FIELD_ERRORS = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
    "description": "One or more messages per field (non_field_errors: about the whole request).",
}

_CALL = _object(
    {
        "service": {"type": "string", "examples": ["route53"]},
        "region": {"type": "string"},
        "operation": {"type": "string", "examples": ["UpdateHealthCheck"]},
        "params": {"type": "object"},
        "endpoint_urls": {"type": "array", "items": {"type": "string"}},
        "inverse": _nullable({"$ref": "#/components/schemas/PlanCall"}),
    },
    required=["service", "region", "operation", "params"],
)

SCHEMAS = {
    "Error": _object({"error": {"type": "string"}}, additional=True),
    # What the drills app tells monitoring (experiments.queries.deliberate_changes): the status
    # API lists these per application.
    "ActiveDrill": _object({
        "id": {"type": "integer"},
        "state": {"type": "string", "enum": [str(state) for state in LIVE_STATES]},
        "region": {"type": "string", "description": "The region it targets.", "examples": ["us-east-1"]},
        "url": {"type": "string", "description": "The drill's page in the console."},
    }),
    "ValidationError": _object(
        {"error": {"type": "string"}, "fields": FIELD_ERRORS}, required=["error", "fields"]
    ),
    "DrillState": {
        "type": "string",
        "enum": list(DrillState.values),
        "description": (
            "requested -> approved -> queued -> running -> reverting, then a final state: "
            "passed (every figure the hypothesis names was measured and met), failed, "
            "inconclusive (the hypothesis could not be tested; outcome_reason says why; "
            "never a pass), aborted or errored; or rejected, expired."
        ),
    },
    "Scenario": _object({
        "slug": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "fault_kind": {"type": "string", "enum": list(FaultKind.values)},
        "architecture": _nullable({"type": "string", "enum": list(Architecture.values)}),
        "parameters": {"type": "object"},
        "hypothesis": {"type": "object"},
        "stop_conditions": {"type": "array", "items": {"type": "object"}},
        "max_duration_seconds": {"type": "integer", "minimum": 1},
        "built_in": {"type": "boolean"},
    }),
    "ScenarioList": _object({"scenarios": {"type": "array", "items": _ref("Scenario")}}),
    # experiments.interop: the other tools' documents, in their own shapes
    "FisExperimentTemplate": {
        "type": "object",
        "description": "The body AWS FIS's CreateExperimentTemplate accepts "
        "(`aws fis create-experiment-template --cli-input-json file://...`).",
        "properties": {
            "clientToken": {"type": "string", "description": "The plan hash: one template per plan."},
            "description": {"type": "string", "maxLength": 512},
            "roleArn": {"type": "string"},
            "targets": {"type": "object"},
            "actions": {"type": "object"},
            "stopConditions": {"type": "array", "items": {"type": "object"}},
            "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["clientToken", "description", "roleArn", "targets", "actions", "stopConditions"],
        "additionalProperties": True,
    },
    "ChaosToolkitExperiment": {
        "type": "object",
        "description": "A Chaos Toolkit experiment (chaostoolkit.org/reference/api/experiment/); "
        "`chaos validate` accepts the exported ones.",
        "properties": {
            "title": {"type": "string"},
            "description": {"type": "string"},
            "configuration": {"type": "object"},
            "steady-state-hypothesis": {"type": "object"},
            "method": {"type": "array", "items": {"type": "object"}},
            "rollbacks": {"type": "array", "items": {"type": "object"}},
            "extensions": {"type": "array", "items": {"type": "object"}},
        },
        "additionalProperties": True,
    },
    # The request bodies are the ones experiments.api parses (controlplane.api.Body).
    "DrillRequest": DRILL_REQUEST.schema(),
    "DrillCreated": _object({
        "id": {"type": "integer"},
        "state": {"const": "requested"},
        "plan_hash": HASH,
        "measurable_from": {
            "type": "array",
            "items": {"type": "string"},
            "description": "The vantages the drilled region serves now (latest probes of the "
            "global endpoint): failover is measured only from these.",
        },
        "warnings": {
            "type": "array",
            "items": {"type": "string"},
            "description": "E.g. that no vantage can measure failover (the drill would end inconclusive).",
        },
    }),
    "PlanCall": _CALL,
    "Plan": {
        "type": "object",
        "description": "What the approver approves: the literal calls with their inverses.",
        "properties": {
            "scenario": {"type": "string"},
            "fault_kind": {"type": "string"},
            "parameters": {"type": "object"},
            "targets": {"type": "array"},
            "calls": {"type": "array", "items": _ref("PlanCall")},
            "max_duration_seconds": {"type": "integer"},
        },
        "additionalProperties": True,
    },
    "DrillStep": _object({
        "at": DATE_TIME,
        "kind": {"type": "string", "enum": list(StepKind.values)},
        "message": {"type": "string"},
    }),
    "Figures": {
        "type": "object",
        "description": (
            "Published by the runner as they arrive; the three times are always present "
            "(null until measured). Also error_rate (0..1), p95_latency_ms, lag_during_ms, "
            "lag_after_ms, regions_during, success_series ([[second since injection, %], ...]). "
            "With several vantages the top-level figures are the worst of them; `vantages` "
            "has each one's, `measured_from` the vantages that measured failover, "
            "`vantages_missing` why a vantage was not observed; `detected_by` who saw the "
            "failure first, `detect_note` why there was nothing to detect."
        ),
        "properties": {
            "time_to_detect": SECONDS,
            "time_to_failover": SECONDS,
            "time_to_recover": SECONDS,
            "error_rate": _nullable({"type": "number"}),
            "p95_latency_ms": _nullable({"type": "number"}),
            "lag_during_ms": _nullable({"type": "number"}),
            "lag_after_ms": _nullable({"type": "number"}),
            "regions_during": {"type": "array", "items": {"type": "string"}},
            "success_series": {
                "type": "array",
                "items": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}]},
            },
        },
        "required": ["time_to_detect", "time_to_failover", "time_to_recover"],
        "additionalProperties": True,
    },
    "Drill": _object({
        "id": {"type": "integer"},
        "state": _ref("DrillState"),
        "scenario": {"type": "string"},
        "application": {"type": "string"},
        "region": {"type": "string"},
        "requested_by": {"type": "string"},
        "requested_at": DATE_TIME,
        "window_start": _nullable(DATE_TIME),
        "window_end": _nullable(DATE_TIME),
        "finished_at": _nullable(DATE_TIME),
        "plan_hash": HASH,
        "plan": _ref("Plan"),
        "steps": {"type": "array", "items": _ref("DrillStep")},
        "figures": _ref("Figures"),
        "outcome_reason": {
            "type": "string",
            "description": "Why the drill ended so; for inconclusive, what could not be tested.",
        },
    }),
    "DrillSummary": _object({
        "id": {"type": "integer"},
        "state": _ref("DrillState"),
        "scenario": {"type": "string"},
        "application": {"type": "string"},
        "region": {"type": "string"},
        "requested_at": DATE_TIME,
        "finished_at": _nullable(DATE_TIME),
        "plan_hash": HASH,
    }),
    "DrillList": _object({"drills": {"type": "array", "items": _ref("DrillSummary")}}),
    "ScheduleProposal": SCHEDULE_PROPOSAL.schema(),
    "ScheduleDecision": SCHEDULE_DECISION.schema(),
    "ScheduleSwitch": SCHEDULE_SWITCH.schema(),
    "Schedule": _object({
        "id": {"type": "integer"},
        "state": {"type": "string", "enum": list(ScheduleState.values)},
        "scenario": {"type": "string"},
        "application": {"type": "string"},
        "region": _nullable({"type": "string", "description": "null: each region in turn."}),
        "cron": {"type": "string", "examples": ["0 3 * * 1"]},
        "time_zone": {"type": "string", "examples": ["Europe/Berlin"]},
        "run_window_minutes": {"type": "number", "minimum": 1},
        "expires_at": DATE_TIME,
        "plan_hashes": {"type": "object", "additionalProperties": HASH,
                        "description": "The plan hash per region, made when it was proposed."},
        "plan_hash": {**HASH, "description": "One hash of plan_hashes: what an approver reviews."},
        "approved_hashes": _nullable({"type": "object", "additionalProperties": HASH}),
        "requested_by": {"type": "string"},
        "approved_by": _nullable({"type": "string"}),
        "approved_at": _nullable(DATE_TIME),
    }),
    "Decision": DECISION.schema(),
    "Rejection": REJECTION.schema(),
    "AbortRequest": ABORT_REQUEST.schema(),
    "HaltRequest": HALT_REQUEST.schema(),
    "Halt": _object(
        {"halted": {"type": "boolean"}, "changed": {"type": "boolean"}, "reason": {"type": "string"}},
        required=["halted", "changed"],
    ),
    # experiments.gamedays
    "GameDayRequest": _object({
        "name": {"type": "string", "minLength": 1, "maxLength": 100},
        "steps": {"type": "array", "minItems": 1, "maxItems": MAX_STEPS, "items": _object({
            "scenario": {"type": "string", "examples": ["fail-region-health-check"]},
            "application": {"type": "string", "examples": ["orders"]},
            "region": {"type": "string", "examples": ["us-east-1"]},
        }), "description": "The drills in the order they run."},
        "pause_seconds": {"type": "integer", "minimum": 0, "maximum": MAX_PAUSE_SECONDS, "default": 0,
                          "description": "Between one drill's end and the next start."},
        "continue_on_failure": {"type": "boolean", "default": False, "description": (
            "false: a failed, errored, aborted or inconclusive drill stops the rest.")},
    }, required=["name", "steps"]),
    "GameDay": _object({
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "state": {"type": "string", "enum": list(GameDayState.values), "description": (
            "proposed -> running -> finished | stopped; proposed -> rejected; running -> waiting "
            "(a step's plan changed: a new approval resumes it at that step) -> running.")},
        "reason": {"type": "string", "description": "Why it stopped, waits, or how it finished."},
        "proposed_by": {"type": "string"},
        "proposed_at": DATE_TIME,
        "pause_seconds": {"type": "integer"},
        "continue_on_failure": {"type": "boolean"},
        "plan_hash": {**HASH, "description": "SHA-256 of its steps' plan hashes, in order: approved."},
        "approved_hash": _nullable(HASH),
        "approved_by": _nullable({"type": "string"}),
        "approved_at": _nullable(DATE_TIME),
        "current_step": {"type": "integer", "minimum": 1},
        "finished_at": _nullable(DATE_TIME),
        "steps": {"type": "array", "items": _object({
            "position": {"type": "integer", "minimum": 1},
            "scenario": {"type": "string"},
            "application": {"type": "string"},
            "region": {"type": "string"},
            "plan_hash": HASH,
            "drill": _nullable({"type": "integer"}),
            "drill_state": _nullable(_ref("DrillState")),
            "outcome_reason": _nullable({"type": "string"}),
        })},
    }),
}


ERRORS = {
    "401": _json("Error", "No valid token: send `Authorization: Bearer TOKEN`."),
    "403": _json("Error", "The token's user has no role that allows this (or, authenticated by the "
                          "console's session cookie instead of a token: the CSRF check failed)."),
    "405": _json("Error", "Method not allowed (the `Allow` header lists the allowed ones)."),
}
BAD_BODY = {"400": _json("ValidationError", "A message per invalid field: not a JSON object (under "
                                            "non_field_errors), an unknown field, a wrong type.")}
NOT_FOUND = {"404": _json("Error", "No such drill.")}
DRILL_ID = [{"name": "pk", "in": "path", "required": True, "schema": {"type": "integer"}}]
CONFLICT = {"409": _json("Error", "The drill is no longer waiting for a decision, its plan changed, "
                                  "or drills are halted.")}

EVIDENCE_HEADERS = {
    "X-Evidence-SHA256": {
        "description": "SHA-256 of the body: the digest its evidence.produced audit event records.",
        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}

PATHS = {
    "/scenarios": {
        "get": {
            "operationId": "listScenarios",
            "summary": "Every drill scenario, built-ins first",
            "description": "Requires experiments.view_scenario (every role).",
            "responses": {"200": _json("ScenarioList", "The scenarios."), **ERRORS},
        }
    },
    "/scenarios/{slug}/export": {
        "parameters": [
            {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "format", "in": "query", "required": True,
             "schema": {"type": "string", "enum": ["fis", "chaostoolkit"]}},
            {"name": "application", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "region", "in": "query", "required": True, "schema": {"type": "string"}},
            {"name": "role_arn", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "fis: the role FIS assumes (default: the application's FIS templates' role)."},
        ],
        "get": {
            "operationId": "exportScenario",
            "summary": "A scenario bound to an application and region, as an AWS FIS template or a "
            "Chaos Toolkit experiment",
            "description": (
                "Binds the scenario through the drill's plan (the targets and literal calls a drill "
                "request would make, values read now). fis: only faults FIS has an action for "
                "(Lambda reserved concurrency 0, pause replication, a FIS template); stop conditions "
                "as the application's CloudWatch alarms where they map, else `none` with a note in "
                "the description. chaostoolkit: an HTTP probe of the global endpoint, the calls "
                "(chaosaws or the AWS CLI), their inverses as rollbacks. Requires "
                "experiments.view_scenario (every role). docs/DRILLS.md \"Export and import\"."
            ),
            "responses": {
                "200": {
                    "description": "The document (Content-Disposition: attachment).",
                    "content": {"application/json": {"schema": {"oneOf": [
                        _ref("FisExperimentTemplate"), _ref("ChaosToolkitExperiment")]}}},
                },
                "400": _json("ValidationError", "A message per invalid choice, or why the scenario "
                                                "cannot be exported (under `format`: \"no FIS action "
                                                "for this fault: ...\")."),
                "404": _json("Error", "No such scenario."),
                **ERRORS,
            },
        },
    },
    "/scenarios/import": {
        "post": {
            "operationId": "importScenario",
            "summary": "Create a scenario from a Chaos Toolkit experiment (operator)",
            "description": (
                "The method's actions must make one fault the library knows (Lambda reserved "
                "concurrency, the SSM failure flag, a Route 53 health check inverted, a Global "
                "Accelerator traffic dial). `?slug=` names the scenario (default: the experiment's). "
                "Requires experiments.add_scenario. Audit: scenario.created."
            ),
            "parameters": [{"name": "slug", "in": "query", "required": False, "schema": {"type": "string"}}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("ChaosToolkitExperiment")}}},
            "responses": {
                "201": _json("Scenario", "The scenario created."),
                "400": _json("ValidationError", "Every action that cannot be mapped (under `method`) "
                                                "and every invalid field; nothing created."),
                **ERRORS,
            },
        }
    },
    "/drills": {
        "get": {
            "operationId": "listDrills",
            "summary": "The drills a schedule made (?schedule=ID), newest first",
            "description": "Requires experiments.view_drill (every role).",
            "parameters": [{"name": "schedule", "in": "query", "required": True,
                            "schema": {"type": "integer"}}],
            "responses": {
                "200": _json("DrillList", "The drills."),
                "400": _json("ValidationError", "No schedule id, or not a number."),
                **ERRORS,
            },
        },
        "post": {
            "operationId": "requestDrill",
            "summary": "Request a drill (operator)",
            "description": (
                "Plans the drill (the literal calls and inverses, values read now) and creates "
                "it in `requested`; an approver other than the requester must approve it. "
                "Requires experiments.request_drill. Audit: drill.requested."
            ),
            "requestBody": _body("DrillRequest"),
            "responses": {
                "201": _json("DrillCreated", "The drill, waiting for approval."),
                "400": _json("ValidationError", "Bad JSON or a message per invalid field."),
                **ERRORS,
            },
        }
    },
    "/drills/{pk}": {
        "parameters": DRILL_ID,
        "get": {
            "operationId": "getDrill",
            "summary": "A drill: state, plan, timeline, figures, outcome",
            "description": "Requires experiments.view_drill (every role).",
            "responses": {"200": _json("Drill", "The drill."), **NOT_FOUND, **ERRORS},
        },
    },
    "/drills/{pk}/approve": {
        "parameters": DRILL_ID,
        "post": {
            "operationId": "approveDrill",
            "summary": "Approve the drill's current plan (approver, never the requester)",
            "description": (
                "Binds the approval to the plan hash and queues the drill (now, or when its "
                "window opens). Audit: drill.approved, drill.queued."
            ),
            "requestBody": _body("Decision", required=False),
            "responses": {
                "200": _json("Drill", "The approved drill."), **BAD_BODY, **NOT_FOUND, **CONFLICT, **ERRORS
            },
        },
    },
    "/drills/{pk}/reject": {
        "parameters": DRILL_ID,
        "post": {
            "operationId": "rejectDrill",
            "summary": "Reject the drill (approver, never the requester), saying why",
            "description": (
                "`comment` is required: the requester reads why. Without one: 400 on `comment`, "
                "nothing written. Audit: drill.rejected (with the comment)."
            ),
            "requestBody": _body("Rejection"),
            "responses": {
                "200": _json("Drill", "The rejected drill."),
                "400": _json("ValidationError", "Bad JSON, a wrong field, or no comment."),
                **NOT_FOUND, **CONFLICT, **ERRORS
            },
        },
    },
    "/drills/{pk}/abort": {
        "parameters": DRILL_ID,
        "post": {
            "operationId": "abortDrill",
            "summary": "Abort a drill (operator or approver)",
            "description": (
                "Before it starts the drill ends as aborted at once (200); while it runs the "
                "runner reverts and ends it as aborted (202). Audit: drill.aborted or "
                "drill.abort_requested."
            ),
            "requestBody": _body("AbortRequest", required=False),
            "responses": {
                "200": _json("Drill", "Aborted."),
                "202": _json("Drill", "Abort requested; the runner reverts."),
                **BAD_BODY,
                **NOT_FOUND,
                "409": _json("Error", "The drill had already ended."),
                **ERRORS,
            },
        },
    },
    "/drills/{pk}/evidence": {
        "parameters": DRILL_ID,
        "get": {
            "operationId": "getDrillEvidence",
            "summary": "The drill's evidence pack: one self-contained HTML page",
            "description": (
                "Plan with hash, calls and inverses; request and decisions; timeline; figures per "
                "vantage with their definitions; success-rate and lag charts (inline SVG); ledger; the "
                "drill's audit rows and the chain's verification; the version. No external asset. "
                "Requires experiments.view_drill (every role). Audit: evidence.produced with the "
                "SHA-256 of the bytes served (also in X-Evidence-SHA256); check a file with "
                "`manage.py verify_evidence FILE`."
            ),
            "responses": {
                "200": {
                    "description": "The pack, as an attachment.",
                    "headers": EVIDENCE_HEADERS,
                    "content": {"text/html": {"schema": {"type": "string"}}},
                },
                **NOT_FOUND, **ERRORS,
            },
        },
    },
    "/drills/{pk}/evidence.pdf": {
        "parameters": DRILL_ID,
        "get": {
            "operationId": "getDrillEvidencePdf",
            "summary": "The drill's evidence pack as a PDF (headless Chromium's print of the HTML)",
            "description": (
                "The PDF names the SHA-256 of the HTML it prints; the PDF's own SHA-256 is recorded "
                "by its evidence.produced audit event (with the HTML's). Requires "
                "experiments.view_drill."
            ),
            "responses": {
                "200": {
                    "description": "The PDF, as an attachment.",
                    "headers": EVIDENCE_HEADERS,
                    "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
                },
                **NOT_FOUND,
                "503": _json("Error", "No PDF engine on this server (the message says why); the HTML works."),
                **ERRORS,
            },
        },
    },
    "/schedules": {
        "post": {
            "operationId": "proposeSchedule",
            "summary": "Propose a drill schedule (operator)",
            "description": (
                "A scenario on an application, one region or each in turn, on five cron fields "
                "read in `time_zone`, each occurrence startable within `run_window` minutes, "
                "expiring at most 90 days out. Its plans are made and hashed per region; an "
                "approver other than the proposer approves them once. Requires "
                "experiments.request_drill. Audit: schedule.proposed."
            ),
            "requestBody": _body("ScheduleProposal"),
            "responses": {
                "201": _json("Schedule", "The schedule, proposed."),
                "400": _json("ValidationError", "Bad JSON or a message per invalid field (a bad "
                                                "cron, an unknown time zone, an expiry too far)."),
                **ERRORS,
            },
        }
    },
    "/gamedays": {
        "post": {
            "operationId": "proposeGameDay",
            "summary": "Propose a game day: drills in order, approved once (operator)",
            "description": (
                "Plans every step now (as a drill request would) and hashes the steps' plan hashes "
                "together; an approver other than the proposer approves that hash. Requires "
                "experiments.request_drill. Audit: gameday.proposed. docs/DRILLS.md \"Game days\"."
            ),
            "requestBody": _body("GameDayRequest"),
            "responses": {
                "201": _json("GameDay", "The game day, waiting for approval."),
                "400": _json("ValidationError", "Bad JSON or a message per invalid field (a step's "
                                                "under `steps`, \"Step N: ...\"); nothing created."),
                **ERRORS,
            },
        }
    },
    "/schedules/{pk}/approve": {
        "parameters": DRILL_ID,
        "post": {
            "operationId": "approveSchedule",
            "summary": "Approve a schedule once (approver, never its proposer)",
            "description": (
                "Binds the standing approval to the plan hashes: each occurrence's drill is "
                "approved by it while its fresh plan hashes the same, and waits for an approver "
                "otherwise. Audit: schedule.approved."
            ),
            "requestBody": _body("ScheduleDecision", required=False),
            "responses": {
                "200": _json("Schedule", "The approved schedule."), **BAD_BODY,
                "404": _json("Error", "No such schedule."),
                "409": _json("Error", "Not proposed any more, expired, or its plan hash is not the one "
                                      "you reviewed."),
                **ERRORS,
            },
        },
    },
    "/gamedays/{pk}": {
        "parameters": DRILL_ID,
        "get": {
            "operationId": "getGameDay",
            "summary": "A game day: state, why, its steps with their drills and results so far",
            "description": "Requires experiments.view_drill (every role).",
            "responses": {"200": _json("GameDay", "The game day."),
                          "404": _json("Error", "No such game day."), **ERRORS},
        },
    },
    "/gamedays/{pk}/approve": {
        "parameters": DRILL_ID,
        "post": {
            "operationId": "approveGameDay",
            "summary": "Approve every step's plan and start the game day (approver, never the proposer)",
            "description": (
                "Each step's drill is then requested in the proposer's name and approved in the "
                "approver's (\"approved as step N of game day #M\") while its fresh plan hashes as "
                "approved; otherwise the game day waits at that step for a new approval. Audit: "
                "gameday.approved, gameday.started."
            ),
            "requestBody": _body("Decision", required=False),
            "responses": {
                "200": _json("GameDay", "The game day, running."), **BAD_BODY,
                "404": _json("Error", "No such game day."),
                "409": _json("Error", "Not waiting for a decision, its plans changed since you "
                                      "reviewed them, or drills are halted."),
                **ERRORS,
            },
        },
    },
    **{
        f"/schedules/{{pk}}/{verb}": {
            "parameters": DRILL_ID,
            "post": {
                "operationId": f"{verb}Schedule",
                "summary": f"{verb.capitalize()} a schedule (operator, approver, admin)",
                "description": (
                    "Paused, no occurrence is made (nor recorded as skipped); resumed, it runs "
                    f"again from now under its approval. Audit: schedule.{verb}d."
                ),
                "requestBody": _body("ScheduleSwitch", required=False),
                "responses": {
                    "200": _json("Schedule", "The schedule."), **BAD_BODY,
                    "404": _json("Error", "No such schedule."),
                    "409": _json("Error", "The schedule is not in the state this needs, or expired."),
                    **ERRORS,
                },
            },
        }
        for verb in ("pause", "resume")
    },
    "/gamedays/{pk}/abort": {
        "parameters": DRILL_ID,
        "post": {
            "operationId": "abortGameDay",
            "summary": "Stop a game day (operator or approver); its running drill is aborted",
            "description": "Audit: gameday.stopped (and the drill's drill.aborted or drill.abort_requested).",
            "requestBody": _body("AbortRequest", required=False),
            "responses": {
                "200": _json("GameDay", "Stopped."), **BAD_BODY,
                "404": _json("Error", "No such game day."),
                "409": _json("Error", "The game day had already ended."),
                **ERRORS,
            },
        },
    },
    "/halt": {
        "post": {
            "operationId": "haltDrills",
            "summary": "Halt all drills (operator, approver, admin)",
            "description": (
                "Running drills abort and revert; none may start until an admin clears the "
                "halt. Anyone who may abort a drill may halt them all. Audit: halt.halted "
                "(rows written before the rename read drills.halt)."
            ),
            "requestBody": _body("HaltRequest"),
            "responses": {
                "200": _json("Halt", "Halted (changed: false if it already was)."),
                "400": _json("ValidationError", "Bad JSON or no reason."),
                **ERRORS,
            },
        },
        "delete": {
            "operationId": "clearHalt",
            "summary": "Clear the halt (admin), saying why",
            "description": (
                "Requires experiments.clear_halt; `reason` is required. Audit: halt.cleared with "
                "the reason (rows written before the rename read drills.clear_halt)."
            ),
            "requestBody": _body("HaltRequest"),
            "responses": {
                "200": _json("Halt", "Cleared (changed: false if it was not on)."),
                "400": _json("ValidationError", "Bad JSON or no reason."),
                **ERRORS,
            },
        },
    },
}
