from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self):
        # experiments/ and regions/ publish through the core's signal and never import
        # this app (controlplane/events.py); this is where their events become deliveries.
        from controlplane.events import event_happened
        from notifications import services

        event_happened.connect(services.on_event, dispatch_uid="notifications.on_event")
