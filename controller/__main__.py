"""`python -m controller` runs the `tether` command."""

from controller.cli import main

main()
