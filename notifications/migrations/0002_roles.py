from django.db import migrations

from controlplane.roles import sync_roles


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
        ("experiments", "0008_approvers_halt"),
        ("regions", "0009_lagstate"),
    ]

    operations = [
        # admins manage notification channels (notifications.manage_channels)
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
    ]
