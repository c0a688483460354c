"""`python -m service.cli`: how clipsweep starts its own child processes (worker, drivers)."""

from service.cli import main

main()
