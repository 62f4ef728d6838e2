from celery import shared_task


@shared_task
def discover_inventory(actor="system"):
    """Discover every application's stacks from AWS by tags and update the inventory."""
    from regions import discovery

    discovery.run_discovery(actor=actor)
