"""clipsweep's service: HTTP API, worker (Ray Tune driver), database, dashboard and CLI."""

__version__ = "0.1.0"
