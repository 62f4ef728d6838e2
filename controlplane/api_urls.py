from django.urls import path

from controlplane import openapi
from regions import api as regions_api

urlpatterns = [
    path("status", regions_api.status, name="api-status"),
    path("inventory", regions_api.inventory, name="api-inventory"),
    path("openapi.json", openapi.openapi_json, name="api-openapi"),
]
