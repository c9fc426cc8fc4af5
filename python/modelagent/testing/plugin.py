"""pytest plugin (``pytest -p modelagent.testing.plugin``, auto-registered through the entry point)."""
