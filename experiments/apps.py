from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    name = "experiments"
    verbose_name = "Failover drills"

    def ready(self):
        # Monitoring does not report as drift a live drill's faults, nor a fault a drill
        # has reverted since it was read, and the console shows each live drill on its
        # application and region, and each region's last passed drill (its freshness).
        from experiments.queries import deliberate_changes, last_passes
        from regions import monitoring

        monitoring.set_deliberate_changes(deliberate_changes)
        monitoring.set_last_passes(last_passes)
