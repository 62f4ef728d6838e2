from django.http import JsonResponse

from controlplane.api import api_view
from regions import inventory as inventory_lib


@api_view(["GET"], permission="regions.view_stack")
def inventory(request):
    """The whole inventory in the import format (applications, regions, stacks)."""
    return JsonResponse(inventory_lib.export_inventory())
