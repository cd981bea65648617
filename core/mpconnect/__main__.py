"""``python -m mpconnect``: the command line."""

from mpconnect.cli import main

main()
