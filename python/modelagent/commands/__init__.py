"""Subcommands of ``model-agent``; each module registers one through ``add_parser``."""
