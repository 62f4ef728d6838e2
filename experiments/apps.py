from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Failover drills"

    def ready(self):
        # Monitoring does not report a live drill's faults as drift, and the console shows
        # the drill on its application and region.
        from experiments.queries import live_drills
        from regions import monitoring

        monitoring.set_deliberate_changes(live_drills)
