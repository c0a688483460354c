"""The `clipsweep` command group and what its commands share."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, NoReturn

import click
import yaml

from service.cli.client import ApiError, Client
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


def server_option(command: Any) -> Any:
    """--server and --token, which every command that talks to the API takes."""
    command = click.option("--token", envvar="CLIPSWEEP_TOKEN", default=None,
                           help="An API token, when the server has auth on [env CLIPSWEEP_TOKEN].")(command)
    return click.option("--server", envvar="CLIPSWEEP_SERVER_URL", default=None,
                        help="clipsweep's URL [env CLIPSWEEP_SERVER_URL; default http://127.0.0.1:8000].")(command)


def client_for(server: str | None, token: str | None) -> Client:
    return Client(server or settings_or_exit().resolved_server_url, token)


def fail(exc: ApiError) -> NoReturn:
    raise click.ClickException(str(exc))


class _Loader(yaml.SafeLoader):
    """YAML with YAML 1.2's numbers: PyYAML follows YAML 1.1, where `1.0e10` and `1e-3` (no dot or
    no sign in the exponent) are text, so a spec's `loss_factor: 1.0e10` would arrive as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def load_file(path: Path) -> Any:
    """A YAML or JSON file's content, or a one-line error saying what is wrong with it."""
    try:
        return yaml.load(path.read_text(), Loader=_Loader)  # YAML is a superset of JSON: both load here
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{path} is not valid YAML or JSON: {exc}") from None
