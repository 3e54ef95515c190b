"""``python -m devicefactory.client`` is ``devicefactory-client``."""

from devicefactory.client import main

main(prog_name="devicefactory-client")
