from django.urls import path

from experiments import schedule_views, views

app_name = "experiments"
urlpatterns = [
    path("", views.drill_list, name="list"),
    path("approvals/", views.approvals, name="approvals"),
    path("new/", views.drill_new, name="new"),
    path("create/", views.drill_create, name="create"),
    path("halt/", views.halt, name="halt"),
    path("halt/clear/", views.clear_halt, name="clear-halt"),
    path("halt/banner/", views.halt_banner, name="halt-banner"),
    path("<int:pk>/", views.drill_detail, name="detail"),
    path("<int:pk>/approval/", views.drill_approval, name="approval"),
    path("<int:pk>/approve/", views.drill_approve, name="approve"),
    path("<int:pk>/reject/", views.drill_reject, name="reject"),
    path("<int:pk>/abort/", views.drill_abort, name="abort"),
    path("<int:pk>/evidence/", views.drill_evidence, name="evidence"),
    path("<int:pk>/evidence.pdf", views.drill_evidence, {"fmt": "pdf"}, name="evidence-pdf"),
    path("<int:pk>/ledger/<int:row>/close/", views.close_ledger_row, name="close-ledger-row"),
    path("scorecard/<slug:app>/", views.scorecard, name="scorecard"),
    path("schedules/", schedule_views.schedule_list, name="schedules"),
    path("schedules/new/", schedule_views.schedule_new, name="schedule-new"),
    path("schedules/create/", schedule_views.schedule_create, name="schedule-create"),
    path("schedules/<int:pk>/", schedule_views.schedule_detail, name="schedule"),
    path("schedules/<int:pk>/approve/", schedule_views.schedule_approve, name="schedule-approve"),
    path("schedules/<int:pk>/pause/", schedule_views.schedule_pause, name="schedule-pause"),
    path("schedules/<int:pk>/resume/", schedule_views.schedule_resume, name="schedule-resume"),
    path("scenarios/", views.scenario_list, name="scenarios"),
    path("scenarios/new/", views.scenario_new, name="scenario-new"),
    path("scenarios/create/", views.scenario_create, name="scenario-create"),
    path("scenarios/import/", views.scenario_import, name="scenario-import"),
    path("scenarios/<slug:slug>/", views.scenario_detail, name="scenario"),
    path("scenarios/<slug:slug>/save/", views.scenario_save, name="scenario-save"),
    path("scenarios/<slug:slug>/export/", views.scenario_export, name="scenario-export"),
]
