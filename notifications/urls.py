from django.urls import path

from notifications import views

app_name = "notifications"
urlpatterns = [
    path("", views.channel_list, name="list"),
    path("create/", views.channel_create, name="create"),
    path("email/", views.email_page, name="email"),
    path("email/set/", views.email_opt_in, name="email-set"),
    path("<int:pk>/", views.channel_detail, name="detail"),
    path("<int:pk>/enabled/", views.channel_enabled, name="enabled"),
    path("<int:pk>/delete/", views.channel_delete, name="delete"),
    path("<int:pk>/test/", views.channel_test, name="test"),
]
