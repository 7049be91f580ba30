"""``python -m agent.cli``: the ``regbridge`` command."""

from agent.cli import main

main()
