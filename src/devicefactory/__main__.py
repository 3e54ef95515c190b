"""``python -m devicefactory``."""

from devicefactory.cli import main

main()
