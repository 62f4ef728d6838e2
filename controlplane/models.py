import hashlib

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone

from controlplane.jsonvalues import canonical_json


class AppendOnlyError(Exception):
    """Raised on any attempt to change or remove an audit event through the ORM."""


class AuditEventQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("Audit events are append-only; they cannot be updated.")

    def delete(self):
        raise AppendOnlyError("Audit events are append-only; they cannot be deleted.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError("Audit events are append-only; they cannot be updated.")

    def update_or_create(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only; use controlplane.audit.record().")

    def bulk_create(self, *args, **kwargs):
        raise AppendOnlyError("Audit events must be chained; use controlplane.audit.record().")


class AuditSource(models.TextChoices):
    CONSOLE = "console", "Console"
    ADMIN = "admin", "Admin"
    COMMAND = "command", "Management command"
    API = "api", "API"
    SYSTEM = "system", "System (worker, beat)"


class AuditEvent(models.Model):
    """One state-changing action. Rows are chained: each stores the SHA-256 of its
    own content together with the previous row's hash, so that altering or removing
    any row breaks the chain, and an HMAC (`mac`) of that hash and the previous row's
    MAC made with a key that lives outside the database (`kid` names it;
    controlplane/auditkeys.py), so that whoever can write the database but holds no key
    cannot rewrite the chain consistently (see `python manage.py verify_audit`)."""

    seq = models.PositiveBigIntegerField(unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    actor = models.CharField(max_length=150, help_text="Username, or 'system'.")
    source = models.CharField(max_length=16, choices=AuditSource.choices)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    after = models.JSONField(null=True, blank=True, encoder=DjangoJSONEncoder)
    request_id = models.CharField(max_length=64, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    kid = models.CharField(
        max_length=32, blank=True, default="", help_text="The key that signed the row; empty: unsigned."
    )
    mac = models.CharField(
        max_length=64,
        blank=True,
        default="",
        help_text="HMAC-SHA256 of kid, seq, hash and the previous row's MAC; empty on rows "
        "written before the keyed chain (sealed by the first signed row after them).",
    )

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-seq"]
        indexes = [
            # audit page: filter by actor, newest first
            models.Index(fields=["actor", "-seq"], name="audit_actor_seq"),
            # audit page: filter by object type, or by one object (a drill page's link to
            # its events: object_type = experiments.drill AND object_id = pk)
            models.Index(fields=["object_type", "object_id", "-seq"], name="audit_object_seq"),
            # audit page: filter by time range
            models.Index(fields=["created_at"], name="audit_created"),
        ]
        permissions = [("export_auditevent", "Can export the audit log as CSV")]

    def __str__(self):
        return f"#{self.seq} {self.actor} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("Audit events are append-only; they cannot be updated.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("Audit events are append-only; they cannot be deleted.")


def audit_content(event):
    """The fields an audit row's hash covers, in a canonical form. A function of the
    row's attributes, so that migrations can hash rows of the historical model too."""
    return {
        "seq": event.seq,
        "created_at": event.created_at.isoformat(),
        "actor": event.actor,
        "source": event.source,
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "object_repr": event.object_repr,
        "before": event.before,
        "after": event.after,
        "request_id": event.request_id,
        "prev_hash": event.prev_hash,
    }


def audit_hash(event):
    return hashlib.sha256(canonical_json(audit_content(event)).encode()).hexdigest()


class AuditChainHead(models.Model):
    """A single row holding the chain's tip. Writers lock it (SELECT ... FOR UPDATE)
    so that concurrent events are chained one after another; it also lets
    verify_audit notice when the newest rows were removed (unless the head was reset
    with them: anchors catch that, controlplane/anchors.py)."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)
    mac = models.CharField(max_length=64, blank=True, default="")
    kid = models.CharField(max_length=32, blank=True, default="")

    class Meta:
        default_permissions = ()

    def __str__(self):
        return f"audit chain head at #{self.seq}"


GENESIS_HASH = "0" * 64


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the token is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=12, db_index=True)
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.prefix}… ({self.user})"

    @property
    def is_active(self):
        return self.revoked_at is None


class ServiceHeartbeat(models.Model):
    """Last time a worker or beat process was seen, written by the process itself
    (controlplane/heartbeats.py). The console computes from these rows whether drills
    and probes can run (controlplane/background.py)."""

    class Kind(models.TextChoices):
        WORKER = "worker", "Worker"
        BEAT = "beat", "Beat"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    hostname = models.CharField(
        max_length=200, help_text="A worker's Celery node name (worker@host); beat@host for beat."
    )
    last_seen = models.DateTimeField()
    queues = models.JSONField(default=list, blank=True, help_text="The queues a worker consumes.")
    pid = models.PositiveIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "hostname"], name="heartbeat_kind_host")
        ]
        indexes = [
            # every console page: the processes seen in the last day (last_seen >= t)
            models.Index(fields=["last_seen"], name="heartbeat_last_seen"),
        ]
        default_permissions = ("view",)

    def __str__(self):
        return f"{self.kind} {self.hostname}"
