"""``python -m pyperunner.cli``: the ``pyperunner`` command."""

from . import main

main()
