from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Failover drills"

    def ready(self):
        # Monitoring does not report a running drill's faults as drift.
        from experiments.queries import applications_with_live_drills
        from regions import monitoring

        monitoring.set_deliberate_changes(applications_with_live_drills)
