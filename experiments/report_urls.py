"""The period report at /reports/ (included by controlplane/urls.py)."""

from django.urls import path

from experiments import views

app_name = "reports"
urlpatterns = [
    path("", views.period_report, name="period"),
    path("report.pdf", views.period_report, {"fmt": "pdf"}, name="period-pdf"),
]
