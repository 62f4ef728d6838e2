from django.db import migrations

from controlplane.roles import sync_roles


def builtin_scenarios(apps, schema_editor):
    from experiments.scenarios import ensure_builtin_scenarios

    ensure_builtin_scenarios(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0001_initial"),
        ("controlplane", "0002_roles"),
    ]

    operations = [
        # the drill permissions (experiments.Drill Meta) join the role groups
        migrations.RunPython(sync_roles, migrations.RunPython.noop),
        migrations.RunPython(builtin_scenarios, migrations.RunPython.noop),
    ]
