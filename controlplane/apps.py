from django.apps import AppConfig


class ControlplaneConfig(AppConfig):
    name = "controlplane"
    verbose_name = "Control plane"

    def ready(self):
        # Connects the audit of sign-in lockouts to django-axes' signal.
        from controlplane import (
            authcache,
            checks,  # noqa: F401 - registers the system checks
            login,  # noqa: F401
        )

        authcache.connect()
