"""Discovery of stacks and components from AWS by tags. Filled in by the discovery work."""


def run_discovery(actor="system"):
    raise NotImplementedError
