"""`python -m agent` runs the `tetherd` command."""

from agent.cli import main

main()
