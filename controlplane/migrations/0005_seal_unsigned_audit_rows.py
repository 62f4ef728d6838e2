"""Seal the audit rows written before the keyed chain: after checking their hash chain,
append one `audit.sealed` event signed with the current audit key; its MAC covers their
hashes through its prev_hash (controlplane/audit.py). Refuses, and so stops the
migration, when their hash chain is broken: sealing would vouch for it."""

from django.db import migrations

from controlplane.audit import seal_unsigned


def seal(apps, schema_editor):
    seal_unsigned(
        apps.get_model("controlplane", "AuditEvent"),
        apps.get_model("controlplane", "AuditChainHead"),
        actor="system",
        source="command",
    )


class Migration(migrations.Migration):

    dependencies = [
        ("controlplane", "0004_audit_keyed_chain"),
    ]

    operations = [
        migrations.RunPython(seal, migrations.RunPython.noop),
    ]
