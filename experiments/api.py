"""The drills JSON API under /api/v1/ (bearer token, roles as in the console).

Every change goes through `experiments.services`, which checks the role again,
validates and writes the audit event (source "api"). Each POST endpoint reads its body
through `controlplane.api.parse_body` against the Body declared here (which is also the
document's request schema, `experiments.openapi`): anything else is a 400 naming the
field, never a 500.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, JsonResponse

from controlplane.api import (
    BadBody,
    Body,
    DateTime,
    Integer,
    Text,
    api_error,
    api_view,
    invalid,
    parse_body,
    read_json_object,
)
from controlplane.models import AuditSource
from controlplane.pdf import PdfUnavailable
from experiments import evidence, gamedays, plans, schedules, services
from experiments.forms import DrillRequestForm, GameDayForm, ScenarioExportForm, ScheduleForm
from experiments.interop import ExportError, chaostoolkit, formats
from experiments.models import Drill, DrillState, DrillStep, GameDay, GameDayStep, Scenario, Schedule
from regions.models import Application, Region

FIGURE_SECONDS = ("time_to_detect", "time_to_failover", "time_to_recover")


def _max_length(model, field):
    return model._meta.get_field(field).max_length


DRILL_REQUEST = Body({
    "scenario": Text(_max_length(Scenario, "slug"), required=True, description="Scenario slug.",
                     examples=("fail-region-health-check",)),
    "application": Text(_max_length(Application, "name"), required=True, examples=("orders",)),
    "region": Text(_max_length(Region, "code"), required=True, examples=("us-east-1",)),
    "window_start": DateTime(description="Not before (default: as soon as approved)."),
    "window_end": DateTime(description="Not after: the drill expires if it has not started by then."),
})
_PLAN_REVIEWED = Text(64, description="The plan you reviewed: 409 if the drill's plan is another one now.")
DECISION = Body({"comment": Text(2000), "plan_hash": _PLAN_REVIEWED})
REJECTION = Body({
    "comment": Text(2000, required=True, min_length=1, description="Why: the requester reads it."),
    "plan_hash": _PLAN_REVIEWED,
})
SCHEDULE_PROPOSAL = Body({
    "scenario": Text(_max_length(Scenario, "slug"), required=True, description="Scenario slug.",
                     examples=("fail-region-health-check",)),
    "application": Text(_max_length(Application, "name"), required=True, examples=("orders",)),
    "region": Text(_max_length(Region, "code"), description="Absent or null: each region in turn.",
                   examples=("us-east-1",)),
    "cron": Text(100, required=True, description="Five cron fields.", examples=("0 3 * * 1",)),
    "time_zone": Text(64, description="IANA name the cron is read in (default UTC).",
                      examples=("Europe/Berlin",)),
    "run_window": Integer(minimum=1, description="Minutes after its time an occurrence may still start "
                          "(default 15).", examples=(15,)),
    "expires_at": DateTime(required=True, description="At most 90 days out."),
})
SCHEDULE_DECISION = Body({
    "comment": Text(2000),
    "plan_hash": Text(64, description="The schedule's plan hash you reviewed: 409 if it is another one."),
})
SCHEDULE_SWITCH = Body({"reason": Text(500)})
ABORT_REQUEST = Body({"reason": Text(500)})
HALT_REQUEST = Body({"reason": Text(500, required=True, min_length=1)})


def _iso(when):
    return when.isoformat() if when else None


def scenario_json(scenario):
    return {
        "slug": scenario.slug,
        "name": scenario.name,
        "description": scenario.description,
        "fault_kind": scenario.fault_kind,
        "architecture": scenario.architecture or None,
        "parameters": scenario.parameters,
        "hypothesis": scenario.hypothesis,
        "stop_conditions": scenario.stop_conditions,
        "max_duration_seconds": int(scenario.max_duration.total_seconds()),
        "built_in": scenario.built_in,
    }


def _number(value):
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def drill_json(drill, steps):
    figures = dict(drill.figures or {})
    for key in FIGURE_SECONDS:
        figures[key] = _number(figures.get(key))
    return {
        "id": drill.pk,
        "state": drill.state,
        "scenario": drill.scenario.slug,
        "application": drill.application.name,
        "region": drill.region.code,
        "requested_by": drill.requested_by.get_username(),
        "requested_at": _iso(drill.requested_at),
        "window_start": _iso(drill.window_start),
        "window_end": _iso(drill.window_end),
        "finished_at": _iso(drill.finished_at),
        "plan_hash": drill.plan_hash,
        "plan": drill.plan,
        "steps": [{"at": _iso(s.at), "kind": s.kind, "message": s.message} for s in steps],
        "figures": figures,
        "outcome_reason": drill.outcome_reason,
    }


def _get_drill(pk):
    drill = Drill.objects.select_related("scenario", "application", "region", "requested_by").filter(pk=pk)
    if (found := drill.first()) is None:
        raise Http404(f"No drill {pk}.")  # controlplane.api.handler404 answers in JSON
    return found


def _drill_response(drill, status=200):
    steps = list(DrillStep.objects.filter(drill_id=drill.pk).order_by("at", "pk"))
    response = JsonResponse(drill_json(drill, steps), status=status)
    response["Cache-Control"] = "no-store"
    return response


@api_view(["GET"], permission="experiments.view_scenario")
def scenarios(request):
    """Every scenario, built-ins first."""
    rows = Scenario.objects.order_by("-built_in", "name")
    return JsonResponse({"scenarios": [scenario_json(s) for s in rows]})


def _form_errors(form):
    fields = {name: [str(m) for m in errors] for name, errors in form.errors.items()}
    if "__all__" in fields:
        fields["non_field_errors"] = fields.pop("__all__")
    return fields


@api_view(["GET"], permission="experiments.view_scenario")
def scenario_export(request, slug):
    """?format=fis|chaostoolkit&application=A&region=R(&role_arn=): the scenario bound to
    the application and region through the drill's plan, as the other tool's document;
    400 naming what does not fit (an unknown choice, a fault FIS has no action for)."""
    scenario = Scenario.objects.filter(slug=slug).first()
    if scenario is None:
        raise Http404(f"No scenario {slug}.")
    form = ScenarioExportForm(request.GET, scenario=scenario)
    if not form.is_valid():
        return invalid(_form_errors(form), "The export request is not valid.")
    data = form.cleaned_data
    try:
        document, filename = formats.export(
            data["format"], scenario, data["application"], data["region"], data["role_arn"]
        )
    except ExportError as exc:
        return invalid({exc.field: [str(exc)]}, str(exc))
    response = JsonResponse(document, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@api_view(["POST"], permission="experiments.add_scenario")
def scenario_import(request):
    """POST a Chaos Toolkit experiment (?slug= to name the scenario): 201 with the
    scenario; 400 naming every action that cannot be mapped, nothing created."""
    try:
        experiment = read_json_object(request)
    except BadBody as exc:
        return exc.response()
    try:
        scenario = chaostoolkit.import_experiment(
            experiment, request.user, source=AuditSource.API, request_id=request.request_id,
            slug=request.GET.get("slug", ""),
        )
    except PermissionDenied as exc:
        return api_error(403, str(exc))
    except chaostoolkit.ImportRefused as exc:
        return invalid(exc.errors, " ".join(exc.errors.get("method", [])) or None)
    response = JsonResponse(scenario_json(scenario), status=201)
    response["Location"] = scenario.get_absolute_url()
    return response


def _drill_summary(drill):
    return {
        "id": drill.pk, "state": drill.state, "scenario": drill.scenario.slug,
        "application": drill.application.name, "region": drill.region.code,
        "requested_at": _iso(drill.requested_at), "finished_at": _iso(drill.finished_at),
        "plan_hash": drill.plan_hash,
    }


def _list_drills(request):
    """GET ?schedule=ID: the drills a schedule's occurrences made, newest first."""
    schedule = request.GET.get("schedule", "")
    if not schedule.isdigit() or len(schedule) > 18:
        return invalid({"schedule": ["Give a schedule id: ?schedule=N."]})
    rows = (
        Drill.objects.filter(occurrence__schedule_id=int(schedule))
        .select_related("scenario", "application", "region")
        .order_by("-requested_at", "-pk")
    )
    return JsonResponse({"drills": [_drill_summary(d) for d in rows]})


@api_view(["GET", "POST"], permission={"GET": "experiments.view_drill", "POST": "experiments.request_drill"})
def drills(request):
    """POST {"scenario", "application", "region", "window_start"?, "window_end"?}:
    201 with the drill's id, state and plan hash; 400 with a message per field.
    GET ?schedule=ID: the drills made by a schedule."""
    if request.method == "GET":
        return _list_drills(request)
    try:
        form = DrillRequestForm(parse_body(request, DRILL_REQUEST))
    except BadBody as exc:
        return exc.response()
    try:
        drill = form.submit(request.user, source=AuditSource.API, request_id=request.request_id)
    except PermissionDenied as exc:
        return api_error(403, str(exc) or "Your role does not allow this action.")
    if drill is not None:
        seen = plans.drill_measurability(drill)
        body = {
            "id": drill.pk,
            "state": drill.state,
            "plan_hash": drill.plan_hash,
            "measurable_from": seen["measurable_from"],
            "warnings": [seen["warning"]] if seen["warning"] else [],
        }
        response = JsonResponse(body, status=201)
        response["Location"] = f"/api/v1/drills/{drill.pk}"
        return response
    fields = {name: [str(m) for m in errors] for name, errors in form.errors.items()}
    if "__all__" in fields:
        fields["non_field_errors"] = fields.pop("__all__")
    return invalid(fields, "The drill request is not valid.")


@api_view(["GET"], permission="experiments.view_drill")
def drill(request, pk):
    return _drill_response(_get_drill(pk))


def _evidence(request, pk, fmt):
    drill = _get_drill(pk)
    try:
        pack = evidence.produce(drill, request.user, fmt, source=AuditSource.API,
                                request_id=request.request_id)
    except PdfUnavailable as exc:
        return api_error(503, str(exc))
    return pack.response()


@api_view(["GET"], permission="experiments.view_drill")
def drill_evidence(request, pk):
    """The drill's evidence pack as one self-contained HTML page; audited with its digest."""
    return _evidence(request, pk, "html")


@api_view(["GET"], permission="experiments.view_drill")
def drill_evidence_pdf(request, pk):
    """The pack's PDF (503 with a message where no PDF engine is installed)."""
    return _evidence(request, pk, "pdf")


def _decide(request, pk, action, body):
    drill = _get_drill(pk)
    try:
        data = parse_body(request, body)
    except BadBody as exc:
        return exc.response()
    comment, seen = data.get("comment", ""), data.get("plan_hash", "")
    if why := services.why_cannot_decide(drill, request.user):
        return api_error(403, why)
    if drill.state != DrillState.REQUESTED:
        return api_error(409, services.not_waiting_message(drill), state=drill.state)
    if seen and seen != drill.plan_hash:
        return api_error(409, services.plan_changed_message(seen, drill), plan_hash=drill.plan_hash)
    try:
        result = action(drill, request.user, comment=comment, source=AuditSource.API,
                        request_id=request.request_id)
    except PermissionDenied as exc:
        return api_error(403, str(exc) or "Your role does not allow this action.")
    except ValidationError as exc:
        if hasattr(exc, "error_dict"):  # a rejection without a comment: nothing written
            return invalid(exc.message_dict)
        return api_error(409, " ".join(exc.messages))
    if result is None:
        drill.refresh_from_db(fields=["state", "plan_hash"])
        return api_error(409, services.not_waiting_message(drill), state=drill.state)
    drill.refresh_from_db()
    return _drill_response(drill)


@api_view(["POST"], permission="experiments.approve_drill")
def approve(request, pk):
    """Approve the drill's current plan (optionally `plan_hash`: the plan you reviewed)."""
    return _decide(request, pk, services.approve, DECISION)


@api_view(["POST"], permission="experiments.approve_drill")
def reject(request, pk):
    """Reject the drill's plan with a `comment` saying why (400 without one)."""
    return _decide(request, pk, services.reject, REJECTION)


@api_view(["POST"], permission="experiments.abort_drill")
def abort(request, pk):
    drill = _get_drill(pk)
    try:
        reason = parse_body(request, ABORT_REQUEST).get("reason", "")
    except BadBody as exc:
        return exc.response()
    result = services.abort(drill, request.user, reason=reason, source=AuditSource.API,
                            request_id=request.request_id)
    if not result:
        return api_error(409, f"Drill {drill.pk} has already ended ({drill.state}).", state=drill.state)
    drill.refresh_from_db()
    response = _drill_response(drill, status=202 if result == "abort requested" else 200)
    return response


@api_view(
    ["POST", "DELETE"], permission={"POST": "experiments.halt_drills", "DELETE": "experiments.clear_halt"}
)
def halt(request):
    """POST {"reason"}: halt all drills (operator, approver, admin). DELETE {"reason"}:
    clear the halt (admin). Either without a reason is a 400 and changes nothing."""
    clearing = request.method == "DELETE"
    switch = services.clear_halt if clearing else services.halt_all
    try:
        reason = parse_body(request, HALT_REQUEST).get("reason", "")
        changed = switch(request.user, reason, source=AuditSource.API, request_id=request.request_id)
    except BadBody as exc:
        return exc.response()
    except ValidationError as exc:
        return invalid(exc.message_dict, "Say why: a reason is required.")
    return JsonResponse({"halted": not clearing, "changed": changed, "reason": reason.strip()})


# --- schedules ------------------------------------------------------------------------


def schedule_json(schedule):
    return {
        "id": schedule.pk,
        "state": schedule.state,
        "scenario": schedule.scenario.slug,
        "application": schedule.application.name,
        "region": schedule.region.code if schedule.region_id else None,
        "cron": schedule.cron,
        "time_zone": schedule.time_zone,
        "run_window_minutes": schedule.run_window.total_seconds() / 60,
        "expires_at": _iso(schedule.expires_at),
        "plan_hashes": schedule.plan_hashes,
        "plan_hash": schedules.plan_digest(schedule.plan_hashes),
        "approved_hashes": schedule.approved_hashes or None,
        "requested_by": schedule.requested_by.get_username(),
        "approved_by": schedule.approved_by.get_username() if schedule.approved_by_id else None,
        "approved_at": _iso(schedule.approved_at),
    }


def _get_schedule(pk):
    found = Schedule.objects.select_related(
        "scenario", "application", "region", "requested_by", "approved_by"
    ).filter(pk=pk).first()
    if found is None:
        raise Http404(f"No schedule {pk}.")
    return found


def _schedule_response(pk, status=200):
    response = JsonResponse(schedule_json(_get_schedule(pk)), status=status)
    response["Cache-Control"] = "no-store"
    return response


@api_view(["POST"], permission="experiments.request_drill")
def schedules_create(request):
    """POST a proposal: 201 with the schedule (proposed, its plan hashes); 400 with a
    message per field."""
    try:
        data = parse_body(request, SCHEDULE_PROPOSAL)
    except BadBody as exc:
        return exc.response()
    form = ScheduleForm({"time_zone": "UTC", "run_window": "15", **data})
    try:
        schedule = form.submit(request.user, source=AuditSource.API, request_id=request.request_id)
    except PermissionDenied as exc:
        return api_error(403, str(exc) or "Your role does not allow this action.")
    if schedule is None:
        return invalid(_form_errors(form), "The schedule is not valid.")
    response = _schedule_response(schedule.pk, status=201)
    response["Location"] = f"/api/v1/schedules/{schedule.pk}"
    return response


@api_view(["POST"], permission="experiments.approve_drill")
def schedule_approve(request, pk):
    """Approve a proposed schedule once (an approver, never its proposer)."""
    schedule = _get_schedule(pk)
    try:
        data = parse_body(request, SCHEDULE_DECISION)
    except BadBody as exc:
        return exc.response()
    if why := services.why_cannot_decide(schedule, request.user):
        return api_error(403, why)
    seen, digest = data.get("plan_hash", ""), schedules.plan_digest(schedule.plan_hashes)
    if seen and seen != digest:
        return api_error(409, f"The schedule's plans hash {digest[:12]}…, not {seen[:12]}…", plan_hash=digest)
    try:
        approved = schedules.approve(schedule, request.user, comment=data.get("comment", ""),
                                     source=AuditSource.API, request_id=request.request_id)
    except ValidationError as exc:
        return api_error(409, " ".join(exc.messages))
    if not approved:
        return api_error(409, f"Schedule #{schedule.pk} is {schedule.state}, not waiting for approval.",
                         state=schedule.state)
    return _schedule_response(schedule.pk)


def _switch(request, pk, switch, wanted):
    schedule = _get_schedule(pk)
    try:
        reason = parse_body(request, SCHEDULE_SWITCH).get("reason", "")
    except BadBody as exc:
        return exc.response()
    try:
        changed = switch(schedule, request.user, reason=reason, source=AuditSource.API,
                         request_id=request.request_id)
    except PermissionDenied as exc:
        return api_error(403, str(exc))
    except ValidationError as exc:
        return api_error(409, " ".join(exc.messages))
    if not changed:
        return api_error(409, f"Schedule #{schedule.pk} is {schedule.state}: it must be {wanted}.",
                         state=schedule.state)
    return _schedule_response(schedule.pk)


@api_view(["POST"], permission="experiments.abort_drill")
def schedule_pause(request, pk):
    """Pause an approved schedule (operator, approver, admin)."""
    return _switch(request, pk, schedules.pause, "approved")


@api_view(["POST"], permission="experiments.abort_drill")
def schedule_resume(request, pk):
    """Resume a paused schedule from now (operator, approver, admin)."""
    return _switch(request, pk, schedules.resume, "paused")


# --- game days ----------------------------------------------------------------------------

GAMEDAY_FIELDS = {"name", "steps", "pause_seconds", "continue_on_failure"}
GAMEDAY_STEP_FIELDS = GameDayForm.STEP_FIELDS


def _gameday_form(data):
    """The proposal's JSON (already an object) as the console form's data -> (form,
    {field: [messages]} for what has the wrong JSON type or is unknown)."""
    errors = {name[:100]: ["Unknown field."] for name in data if name not in GAMEDAY_FIELDS}
    name, pause = data.get("name", ""), data.get("pause_seconds", 0)
    if not isinstance(name, str):
        errors["name"] = ["name must be a string."]
    if isinstance(pause, bool) or not isinstance(pause, int):
        errors["pause_seconds"] = ["pause_seconds must be an integer (seconds)."]
    if not isinstance(data.get("continue_on_failure", False), bool):
        errors["continue_on_failure"] = ["continue_on_failure must be true or false."]
    steps = data.get("steps", [])
    if not isinstance(steps, list):
        errors["steps"] = ["steps must be an array of {scenario, application, region}."]
        steps = []
    form_data = {"name": name, "pause_seconds": str(pause),
                 "continue_on_failure": "on" if data.get("continue_on_failure") is True else ""}
    for n, step in enumerate(steps, start=1):
        if not isinstance(step, dict) or set(step) - set(GAMEDAY_STEP_FIELDS) or not all(
            isinstance(step.get(part, ""), str) for part in GAMEDAY_STEP_FIELDS
        ):
            errors.setdefault("steps", []).append(
                f"Step {n}: an object of strings scenario, application and region, nothing else."
            )
            continue
        form_data |= {f"step_{n}_{part}": step.get(part, "") for part in GAMEDAY_STEP_FIELDS}
    return GameDayForm(form_data, rows=len(steps)), errors


def _gameday_errors(form):
    """The form's errors with a step's field named as the API names it: under "steps",
    "Step N: ..." (the messages of the service already say which step)."""
    fields = {}
    for name, messages in _form_errors(form).items():
        if name.startswith("step_"):
            n = name.split("_")[1]
            fields.setdefault("steps", []).extend(
                m if m.startswith("Step ") else f"Step {n}: {m}" for m in messages
            )
        else:
            fields.setdefault(name, []).extend(messages)
    return fields


def gameday_json(game_day):
    steps = GameDayStep.objects.filter(game_day=game_day).select_related(
        "scenario", "application", "region", "drill").order_by("position")
    return {
        "id": game_day.pk,
        "name": game_day.name,
        "state": game_day.state,
        "reason": game_day.reason,
        "proposed_by": game_day.requested_by.get_username(),
        "proposed_at": _iso(game_day.requested_at),
        "pause_seconds": int(game_day.pause.total_seconds()),
        "continue_on_failure": game_day.continue_on_failure,
        "plan_hash": game_day.plan_hash,
        "approved_hash": game_day.approved_hash or None,
        "approved_by": game_day.approved_by.get_username() if game_day.approved_by else None,
        "approved_at": _iso(game_day.approved_at),
        "current_step": game_day.current,
        "finished_at": _iso(game_day.finished_at),
        "steps": [{
            "position": step.position,
            "scenario": step.scenario.slug,
            "application": step.application.name,
            "region": step.region.code,
            "plan_hash": step.plan_hash,
            "drill": step.drill_id,
            "drill_state": step.drill.state if step.drill else None,
            "outcome_reason": step.drill.outcome_reason if step.drill else None,
        } for step in steps],
    }


def _get_gameday(pk):
    found = GameDay.objects.select_related("requested_by", "approved_by").filter(pk=pk).first()
    if found is None:
        raise Http404(f"No game day {pk}.")
    return found


def _gameday_response(game_day, status=200):
    response = JsonResponse(gameday_json(game_day), status=status)
    response["Cache-Control"] = "no-store"
    return response


@api_view(["POST"], permission="experiments.request_drill")
def gamedays_create(request):
    """POST {"name", "steps": [{"scenario", "application", "region"}], "pause_seconds"?,
    "continue_on_failure"?}: 201 with the game day (every step planned); 400 with a
    message per field, nothing created."""
    try:
        form, errors = _gameday_form(read_json_object(request))
    except BadBody as exc:
        return exc.response()
    if errors:
        return invalid(errors, "The game day is not valid.")
    try:
        game_day = form.submit(request.user, source=AuditSource.API, request_id=request.request_id)
    except PermissionDenied as exc:
        return api_error(403, str(exc) or "Your role does not allow this action.")
    if game_day is None:
        return invalid(_gameday_errors(form), "The game day is not valid.")
    response = _gameday_response(game_day, status=201)
    response["Location"] = f"/api/v1/gamedays/{game_day.pk}"
    return response


@api_view(["GET"], permission="experiments.view_drill")
def gameday(request, pk):
    return _gameday_response(_get_gameday(pk))


@api_view(["POST"], permission="experiments.approve_drill")
def gameday_approve(request, pk):
    """Approve every step's plan as it hashes now (`plan_hash`: what you reviewed, 409 if
    they changed) and start the game day, or resume it where it waits."""
    game_day = _get_gameday(pk)
    try:
        data = parse_body(request, DECISION)
    except BadBody as exc:
        return exc.response()
    if why := gamedays.why_cannot_decide(game_day, request.user):
        return api_error(403, why)
    seen = data.get("plan_hash", "")
    if seen and seen != game_day.plan_hash:
        return api_error(409, gamedays.plan_changed_message(seen, game_day), plan_hash=game_day.plan_hash)
    try:
        approved = gamedays.approve(game_day, request.user, comment=data.get("comment", ""),
                                    source=AuditSource.API, request_id=request.request_id)
    except ValidationError as exc:
        return api_error(409, " ".join(exc.messages))
    game_day.refresh_from_db()
    if not approved:
        return api_error(409, gamedays.not_waiting_message(game_day), state=game_day.state)
    return _gameday_response(game_day)


@api_view(["POST"], permission="experiments.abort_drill")
def gameday_abort(request, pk):
    """Stop the game day; its running drill is aborted as any drill is."""
    game_day = _get_gameday(pk)
    try:
        reason = parse_body(request, ABORT_REQUEST).get("reason", "")
    except BadBody as exc:
        return exc.response()
    if not gamedays.abort(game_day, request.user, reason=reason, source=AuditSource.API,
                          request_id=request.request_id):
        game_day.refresh_from_db()
        return api_error(409, f"Game day {game_day.pk} has already ended ({game_day.state}).",
                         state=game_day.state)
    game_day.refresh_from_db()
    return _gameday_response(game_day)
