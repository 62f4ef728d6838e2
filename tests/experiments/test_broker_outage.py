"""Approving a drill while the broker is down or silent: the request answers at once,
the drill stays queued and is sent again later, and the page says so."""

from datetime import timedelta

import pytest
from django.urls import reverse
from kombu.exceptions import OperationalError

from controlplane.celery import app as celery_app
from controlplane.models import AuditEvent
from experiments import reaper, services
from experiments.models import DrillState, DrillStep, StepKind
from tests.processes import console_request, unique_queue

PLAN = {"calls": [{"service": "route53", "operation": "UpdateHealthCheck", "params": {"Inverted": True}}]}
WAITING = "approved and queued, but the task broker is not answering: the drill stays queued and is sent when"


@pytest.fixture
def drill(make_drill):
    return make_drill(scenario="fail-region-health-check", plan=PLAN, plan_hash="a" * 64)


@pytest.mark.django_db(transaction=True)
def test_approving_with_a_silent_redis_answers_within_seconds_and_keeps_the_drill_queued(
    drill, approver, silent_redis
):
    result = console_request(
        approver.pk,
        "POST",
        reverse("experiments:approve", args=[drill.pk]),
        {"plan_hash": drill.plan_hash},
        CONTROLPLANE_BROKER_URL=silent_redis.url(db=14),
        CONTROLPLANE_DRILL_QUEUE=unique_queue("silent"),
    )

    assert silent_redis.connections >= 1  # it did try the broker
    assert result["seconds"] < 6  # 2 attempts x CONTROLPLANE_BROKER_TIMEOUT (2 s); was 34-150 s
    assert result["status"] == 302
    assert f"Drill #{drill.pk} {WAITING} the broker is back." in result["page"]
    drill.refresh_from_db()
    assert drill.state == DrillState.QUEUED
    assert drill.dispatched_at is None  # the reaper's redispatch picks it up
    note = DrillStep.objects.filter(drill=drill, kind=StepKind.NOTE).last()
    assert "The task broker did not take the run message" in note.message
    assert AuditEvent.objects.filter(object_id=str(drill.pk), action="drill.queued").exists()


@pytest.mark.django_db(transaction=True)
def test_an_approval_the_broker_refuses_is_queued_with_the_message(drill, approver, client_for, monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(celery_app, "send_task", refuse)

    response = client_for(approver).post(
        reverse("experiments:approve", args=[drill.pk]), {"plan_hash": drill.plan_hash}, follow=True
    )

    assert response.status_code == 200
    assert WAITING in response.content.decode()
    drill.refresh_from_db()
    assert services.waiting_for_broker(drill)


@pytest.mark.django_db(transaction=True)
def test_a_queued_drill_the_broker_refused_is_sent_again_once_it_answers(
    drill, approver, monkeypatch, settings
):
    def refuse(*args, **kwargs):
        raise OperationalError("Timeout reading from socket")

    monkeypatch.setattr(celery_app, "send_task", refuse)
    services.approve(drill, approver)
    drill.refresh_from_db()
    assert services.waiting_for_broker(drill)

    sent = []
    monkeypatch.setattr(celery_app, "send_task", lambda name, **k: sent.append((name, k["args"])))
    later = drill.queued_at + timedelta(seconds=settings.DRILL_REDISPATCH_AFTER_SECONDS + 1)

    assert reaper.reap(now=later)["redispatched"] == [drill.pk]
    assert sent == [(services.RUN_DRILL_TASK, [drill.pk])]
    drill.refresh_from_db()
    assert not services.waiting_for_broker(drill)


@pytest.mark.django_db(transaction=True)
def test_an_approval_the_broker_takes_says_approved(drill, approver, client_for, monkeypatch):
    monkeypatch.setattr(celery_app, "send_task", lambda *a, **k: None)

    response = client_for(approver).post(
        reverse("experiments:approve", args=[drill.pk]), {"plan_hash": drill.plan_hash}, follow=True
    )

    assert f"Drill #{drill.pk} approved." in response.content.decode()
    assert WAITING not in response.content.decode()
