"""``python -m eoseg`` runs the command line."""

from eoseg.cli import main

main()
