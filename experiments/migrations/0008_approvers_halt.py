from django.db import migrations

from controlplane.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0007_ledger_gone_closed"),
    ]

    operations = [
        # approvers may halt all drills (experiments.halt_drills): whoever may abort one
        # may stop everything
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
    ]
