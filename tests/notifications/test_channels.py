"""SNS and email channels, and who may manage channels: the API, the console, the command."""

import json

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.urls import reverse

from controlplane import events
from controlplane.events import EventKind
from controlplane.models import AuditEvent
from notifications import services, tasks
from notifications.models import Channel, Delivery, DeliveryState

pytestmark = pytest.mark.django_db
SECRET_PATH = "/services/T0/B0/super-secret-token"
URL = "https://hooks.example.com" + SECRET_PATH


def _publish(django_capture_on_commit_callbacks, kind=EventKind.DRILL_FAILED):
    with django_capture_on_commit_callbacks(execute=True):
        events.publish(kind, "Drill #7 failed: failover took 93 s", drill=7)
    return list(Delivery.objects.filter(event__kind=kind))


def test_email_goes_to_the_opted_in_users_only(admin, make_user, django_capture_on_commit_callbacks):
    wants = make_user("willa", "viewer")
    wants.email = "willa@example.com"
    wants.save()
    quiet = make_user("quinn", "viewer")
    quiet.email = "quinn@example.com"
    quiet.save()
    services.set_email_opt_in(wants, True)
    services.create_channel(admin, name="mail", kind="email", target="", events=["drill_failed"])

    [delivery] = _publish(django_capture_on_commit_callbacks)
    tasks.deliver.apply(args=[delivery.pk])

    assert [m.to for m in mail.outbox] == [["willa@example.com"]]
    assert mail.outbox[0].subject == "[Drill failed] Drill #7 failed: failover took 93 s"
    delivery.refresh_from_db()
    assert (delivery.state, delivery.result) == (DeliveryState.DELIVERED, "email to 1 user(s)")
    assert AuditEvent.objects.filter(action="notification.email_opted_in", object_id=str(wants.pk)).exists()


def test_a_user_opts_in_and_out_on_the_console(client_for, viewer):
    viewer.email = "vera@example.com"
    viewer.save()
    client = client_for(viewer)
    client.post(reverse("notifications:email-set"), {"wanted": "true"})
    assert viewer.notification_opt_in
    client.post(reverse("notifications:email-set"), {"wanted": "false"})
    viewer.refresh_from_db()
    assert not hasattr(viewer, "notification_opt_in")


@pytest.mark.sandbox
def test_an_sns_publish_lands_in_the_sandbox(sandbox_settings, sandbox_aws, admin,
                                             django_capture_on_commit_callbacks):
    sns, sqs = sandbox_aws("sns", "us-east-1"), sandbox_aws("sqs", "us-east-1")
    topic = sns.create_topic(Name="failover-events")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="failover-events-inbox")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=attributes["QueueArn"],
                  Attributes={"RawMessageDelivery": "true"})
    services.create_channel(admin, name="sns", kind="sns", target=topic, events="all")

    [delivery] = _publish(django_capture_on_commit_callbacks)
    tasks.deliver.apply(args=[delivery.pk])

    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED, delivery.last_error
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)["Messages"]
    [body] = [json.loads(m["Body"]) for m in messages]
    assert (body["kind"], body["payload"]) == ("drill_failed", {"drill": 7})
    assert delivery.result.startswith("MessageId ")


def test_the_webhook_url_is_never_shown_back(client_for, admin):
    client = client_for(admin)
    created = client.post("/api/v1/channels", {"kind": "webhook", "target": URL, "events": "all"},
                          content_type="application/json")
    assert created.status_code == 201
    assert created.json()["target"] == "https://hooks.example.com/…"
    channel = Channel.objects.get()
    pages = [
        created,
        client.get("/api/v1/channels"),
        client.get(reverse("notifications:list")),
        client.get(reverse("notifications:detail", args=[channel.pk])),
    ]
    for page in pages:
        assert page.status_code in (200, 201)
        assert SECRET_PATH not in page.content.decode()
    assert SECRET_PATH not in channel.target_secret
    audited = [json.dumps([e.before, e.after, e.object_repr]) for e in AuditEvent.objects.all()]
    assert audited
    assert not any(SECRET_PATH in row for row in audited)


@pytest.mark.parametrize("role", ["viewer", "operator", "approver", "outsider"])
def test_only_admins_manage_channels(request, client_for, admin, role):
    channel = services.create_channel(admin, name="hook", kind="webhook", target=URL, events="all")
    client = client_for(request.getfixturevalue(role))
    assert client.get("/api/v1/channels").status_code == 403
    assert client.post("/api/v1/channels", {"kind": "sns", "target": "x", "events": "all"},
                       content_type="application/json").status_code == 403
    assert client.delete(f"/api/v1/channels/{channel.pk}").status_code == 403
    assert client.get(reverse("notifications:list")).status_code == 403
    for name in ("test", "delete", "enabled"):
        assert client.post(reverse(f"notifications:{name}", args=[channel.pk])).status_code == 403
    assert Channel.objects.count() == 1
    assert not Delivery.objects.exists()


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "pager", "target": URL, "events": "all"}, "kind"),
    ({"kind": "webhook", "target": "ftp://x/y", "events": "all"}, "target"),
    ({"kind": "webhook", "target": URL, "events": ["drill_exploded"]}, "events"),
    ({"kind": "webhook", "target": URL, "events": []}, "events"),
    ({"kind": "sns", "target": "my-topic", "events": "all"}, "target"),
    ({"kind": "email", "target": "someone@example.com", "events": "all"}, "target"),
    ({"kind": "webhook", "target": URL, "events": "all", "colour": "red"}, "colour"),
    ({"kind": 3, "target": URL, "events": "all"}, "kind"),
])
def test_bad_channel_requests_get_a_400_naming_the_field_and_change_nothing(client_for, admin, body, field):
    response = client_for(admin).post("/api/v1/channels", body, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Channel.objects.exists()


def test_the_api_deletes_a_channel_audited(client_for, admin):
    channel = services.create_channel(admin, name="hook", kind="webhook", target=URL, events="all")
    assert client_for(admin).delete(f"/api/v1/channels/{channel.pk}").status_code == 204
    assert not Channel.objects.exists()
    assert [e.action for e in AuditEvent.objects.order_by("seq")] == [
        "notification.channel_created", "notification.channel_deleted",
    ]


def test_the_console_form_shows_the_services_errors(client_for, admin):
    response = client_for(admin).post(reverse("notifications:create"),
                                      {"name": "x", "kind": "sns", "target": "nope", "all_events": "on"})
    assert response.status_code == 400
    assert "An SNS target is a topic ARN" in response.content.decode()
    assert not Channel.objects.exists()


def test_the_console_makes_a_channel_and_sends_a_test(client_for, admin):
    client = client_for(admin)
    response = client.post(reverse("notifications:create"), {
        "name": "ops", "kind": "webhook", "target": URL, "events": ["halted", "halt_cleared"],
    })
    channel = Channel.objects.get()
    assert response.status_code == 302
    assert (channel.all_events, channel.events) == (False, ["halt_cleared", "halted"])
    client.post(reverse("notifications:test", args=[channel.pk]))
    assert channel.deliveries.get().event.kind == "test"


def test_add_channel_command(capsys):
    call_command("add_channel", "sns", "arn:aws:sns:us-east-1:123456789012:ops", "--events", "halted",
                 "drift_found")
    channel = Channel.objects.get()
    assert (channel.kind, channel.events) == ("sns", ["drift_found", "halted"])
    assert AuditEvent.objects.get(action="notification.channel_created").actor == "command"
    with pytest.raises(CommandError, match="events: Unknown event kind"):
        call_command("add_channel", "webhook", URL, "--events", "nope")
