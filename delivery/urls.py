from django.urls import path

from delivery import api

urlpatterns = [
    path("drivers", api.DriverListApi.as_view(), name="drivers"),
    path("drivers/me/status", api.DriverStatusApi.as_view(), name="driver-status"),
    path("drivers/me/locations", api.LocationsApi.as_view(), name="driver-locations"),
    path("drivers/me/assignment", api.MyAssignmentApi.as_view(), name="driver-assignment"),
    path("assignments/<uuid:assignment_id>/accept", api.AssignmentAcceptApi.as_view(), name="assignment-accept"),
    path("assignments/<uuid:assignment_id>/decline", api.AssignmentDeclineApi.as_view(), name="assignment-decline"),
    path("assignments/<uuid:assignment_id>/pickup", api.AssignmentPickUpApi.as_view(), name="assignment-pickup"),
    path("assignments/<uuid:assignment_id>/deliver", api.AssignmentDeliverApi.as_view(), name="assignment-deliver"),
    path("orders/<uuid:order_id>/tracking", api.OrderTrackingApi.as_view(), name="order-tracking"),
]
