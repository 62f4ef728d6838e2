from django.db import migrations


def builtin_scenarios(apps, schema_editor):
    """The built-ins again: pause-replication's hypothesis now names the time to
    converge after resume (max_time_to_converge_seconds), which the runner measures."""
    from experiments.scenarios import ensure_builtin_scenarios

    ensure_builtin_scenarios(apps)


class Migration(migrations.Migration):
    dependencies = [("experiments", "0004_drill_state_inconclusive")]

    operations = [migrations.RunPython(builtin_scenarios, migrations.RunPython.noop)]
