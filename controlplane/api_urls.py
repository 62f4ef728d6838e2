from django.urls import path

from controlplane import openapi
from experiments import api as drills_api
from notifications import api as notifications_api
from regions import api as regions_api

urlpatterns = [
    path("status", regions_api.status, name="api-status"),
    path("inventory", regions_api.inventory, name="api-inventory"),
    path("scenarios", drills_api.scenarios, name="api-scenarios"),
    path("scenarios/import", drills_api.scenario_import, name="api-scenario-import"),
    path("scenarios/<slug:slug>/export", drills_api.scenario_export, name="api-scenario-export"),
    path("drills", drills_api.drills, name="api-drills"),
    path("drills/<int:pk>", drills_api.drill, name="api-drill"),
    path("drills/<int:pk>/approve", drills_api.approve, name="api-drill-approve"),
    path("drills/<int:pk>/reject", drills_api.reject, name="api-drill-reject"),
    path("drills/<int:pk>/abort", drills_api.abort, name="api-drill-abort"),
    path("drills/<int:pk>/evidence", drills_api.drill_evidence, name="api-drill-evidence"),
    path("drills/<int:pk>/evidence.pdf", drills_api.drill_evidence_pdf, name="api-drill-evidence-pdf"),
    path("schedules", drills_api.schedules_create, name="api-schedules"),
    path("schedules/<int:pk>/approve", drills_api.schedule_approve, name="api-schedule-approve"),
    path("schedules/<int:pk>/pause", drills_api.schedule_pause, name="api-schedule-pause"),
    path("schedules/<int:pk>/resume", drills_api.schedule_resume, name="api-schedule-resume"),
    path("gamedays", drills_api.gamedays_create, name="api-gamedays"),
    path("gamedays/<int:pk>", drills_api.gameday, name="api-gameday"),
    path("gamedays/<int:pk>/approve", drills_api.gameday_approve, name="api-gameday-approve"),
    path("gamedays/<int:pk>/abort", drills_api.gameday_abort, name="api-gameday-abort"),
    path("halt", drills_api.halt, name="api-halt"),
    path("channels", notifications_api.channels, name="api-channels"),
    path("channels/<int:pk>", notifications_api.channel, name="api-channel"),
    path("openapi.json", openapi.openapi_json, name="api-openapi"),
]
