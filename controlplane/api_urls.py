from django.urls import path

from regions import api as regions_api

urlpatterns = [
    path("inventory", regions_api.inventory, name="api-inventory"),
]
