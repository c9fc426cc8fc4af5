"""``python -m modelagent`` runs the ``model-agent`` command."""

from modelagent.cli import main

raise SystemExit(main())
