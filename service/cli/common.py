"""The `clipsweep` command group and what its commands share."""

from __future__ import annotations

import logging

import click

from service.errors import SettingsError
from service.settings import Settings, get_settings


@click.group()
@click.version_option(package_name="clipsweep")
def main() -> None:
    """clipsweep: how often does training blow up, and does gradient clipping stop it?"""


def settings_or_exit() -> Settings:
    """The settings, or a one-line error per bad CLIPSWEEP_ variable (never a traceback)."""
    try:
        return get_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
