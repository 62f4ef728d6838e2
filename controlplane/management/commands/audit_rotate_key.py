from django.core.management.base import BaseCommand, CommandError

from controlplane import auditkeys
from controlplane.audit import rotate_key
from controlplane.auditkeys import AuditKeyError


class Command(BaseCommand):
    help = (
        "Rotate the audit log's signing key. With a key file (CONTROLPLANE_AUDIT_KEY_FILE, or "
        "the embedded default) a new key is added to it and made current; old keys stay, to "
        "verify the rows they signed. With CONTROLPLANE_AUDIT_KEY, put the new key first "
        "yourself (--generate prints one) and restart; this then records the rotation. Either "
        "way the rotation is an audit event (audit.key_rotated, old and new key id) signed "
        "with the new key; rows signed with the old key after it fail verify_audit."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--generate", action="store_true",
            help="Only print a new 'kid:secret' for CONTROLPLANE_AUDIT_KEY; change nothing.",
        )

    def handle(self, *args, generate, **options):
        if generate:
            kid, secret = auditkeys.new_key()
            self.stdout.write(f"{kid}:{secret}")
            return
        try:
            event = rotate_key("system")
        except AuditKeyError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(self.style.SUCCESS(
            f"Audit key rotated: {event.after['old_kid'] or '(none)'} -> {event.after['new_kid']} "
            f"(event seq {event.seq})."
        ))
