"""The HTTP API and the dashboard, assembled by `create_app`."""
