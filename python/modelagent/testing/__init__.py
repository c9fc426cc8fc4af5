"""Local fake servers and a pytest plugin for integration tests that drive modelagent."""
