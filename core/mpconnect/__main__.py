"""``python -m mpconnect``: the command line."""

from mpconnect.cli import main

if __name__ == "__main__":  # not when a spawned upload process imports this module
    main()
