"""Shared pytest fixtures, one module per concern in tests/fixtures/ (its __init__.py lists
them); add a module there, and its name here, for a new concern."""

pytest_plugins = [
    "fixtures.data",
    "fixtures.tracking_uri",
    "fixtures.harness",
    "fixtures.digits",
    "fixtures.tracking_server",
    "fixtures.slurm",
    "fixtures.browser",
]
