from django.contrib import admin
from django.urls import include, path

from controlplane import views

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("background/", views.background_status, name="background"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", views.logout_view, name="logout"),
    path("audit/", views.audit_list, name="audit"),
    path("audit.csv", views.audit_csv, name="audit-csv"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("controlplane.api_urls")),
    path("drills/", include("experiments.urls")),
    path("reports/", include("experiments.report_urls")),
    path("notifications/", include("notifications.urls")),
    path("", include("regions.urls")),
]

# JSON under /api/, Django's pages elsewhere (controlplane.api)
handler400 = "controlplane.api.handler400"
handler403 = "controlplane.api.handler403"
handler404 = "controlplane.api.handler404"
handler500 = "controlplane.api.handler500"
