from django.urls import path

from regions import views

app_name = "regions"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("apps/<slug:app>/", views.application_detail, name="application"),
    path("apps/<slug:app>/<str:region>/", views.stack_detail, name="stack"),
    path("apps/<slug:app>/<str:region>/series.json", views.stack_series_json, name="series"),
    path("apps/<slug:app>/<str:region>/now/", views.stack_now, name="now"),
    path("apps/<slug:app>/<str:region>/drift/undo/", views.apply_drift_undo, name="apply-undo"),
    path("inventory/discover/", views.discover, name="discover"),
    path("inventory/export.<str:fmt>", views.export_inventory, name="export"),
]
