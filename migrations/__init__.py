"""Alembic migrations for clipsweep's database (run them with `clipsweep db upgrade`)."""
