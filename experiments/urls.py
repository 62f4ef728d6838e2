from django.urls import path

from experiments import gameday_views, views

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
    path("gamedays/", gameday_views.gameday_list, name="gamedays"),
    path("gamedays/new/", gameday_views.gameday_new, name="gameday-new"),
    path("gamedays/create/", gameday_views.gameday_create, name="gameday-create"),
    path("gamedays/<int:pk>/", gameday_views.gameday_detail, name="gameday"),
    path("gamedays/<int:pk>/approve/", gameday_views.gameday_approve, name="gameday-approve"),
    path("gamedays/<int:pk>/reject/", gameday_views.gameday_reject, name="gameday-reject"),
    path("gamedays/<int:pk>/abort/", gameday_views.gameday_abort, name="gameday-abort"),
    path("scorecard/<slug:app>/", views.scorecard, name="scorecard"),
    path("scenarios/", views.scenario_list, name="scenarios"),
    path("scenarios/new/", views.scenario_new, name="scenario-new"),
    path("scenarios/create/", views.scenario_create, name="scenario-create"),
    path("scenarios/import/", views.scenario_import, name="scenario-import"),
    path("scenarios/<slug:slug>/", views.scenario_detail, name="scenario"),
    path("scenarios/<slug:slug>/save/", views.scenario_save, name="scenario-save"),
    path("scenarios/<slug:slug>/export/", views.scenario_export, name="scenario-export"),
]
