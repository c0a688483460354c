"""docker-compose.yml and the Dockerfile, checked without Docker.

Every command a service runs is parsed by the real parser of the program it names (clipsweep's own
click group, alembic's argparse parser, Ray's click CLI); every CLIPSWEEP_* variable must be a field
of service.settings.Settings; dependencies, the database URL, the Ray address, the GPU reservation
and the shared Tune storage are checked against the services that provide them. A failure names
the service and what is wrong.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import PurePosixPath
from typing import Any

import click
import pytest
import yaml
from packaging.requirements import Requirement
from sqlalchemy.engine import make_url

import service.cli
from service.settings import Settings
from tests.harness import ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10; pytest depends on tomli there
    import tomli as tomllib

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_PREFIX: str = Settings.model_config["env_prefix"]
SETTINGS_ENV = {ENV_PREFIX + name.upper(): name for name in Settings.model_fields}
# The few variables the trainers read themselves on the Ray nodes (e.g. CLIPSWEEP_KEEP_FREED_MEMORY).
_ENV_READ = re.compile(r"""os\.environ(?:\.get\(|\[)\s*["'](""" + re.escape(ENV_PREFIX) + r"""\w+)["']""")
TRAINER_ENV = {name for path in (ROOT / "trainers").rglob("*.py") for name in _ENV_READ.findall(path.read_text())}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


# ---- loading ---------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\$|\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def _substitute(match: re.Match[str]) -> str:
    if match.group(0) == "$$":
        return "$"
    if match.group(2) and match.group(2).endswith("?"):  # required: .env must set it
        return f"required-{match.group(1).lower()}"
    return match.group(3) or ""


def _interpolate(value: Any) -> Any:
    """Compose's ${VAR:-default} and ${VAR:?message} with nothing from the host (defaults only, a
    placeholder for what is required), so tests are stable."""
    if isinstance(value, str):
        return _INTERPOLATION.sub(_substitute, value)
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    return value


@lru_cache
def compose() -> dict[str, Any]:
    # safe_load resolves anchors, aliases and `<<` merge keys the way compose does (shallowly).
    return _interpolate(yaml.safe_load(COMPOSE_FILE.read_text()))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


SERVICE_NAMES = sorted(yaml.safe_load(COMPOSE_FILE.read_text())["services"])


def environment(svc: dict[str, Any]) -> dict[str, str | None]:
    env = svc.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {k: None if v is None else str(v) for k, v in env.items()}


def settings_for(name: str) -> Settings:
    """The Settings a clipsweep process in this service sees: the image's ENV, then the service's."""
    env = {**dockerfile().env, **environment(services()[name])}
    values = {SETTINGS_ENV[k]: v for k, v in env.items() if k in SETTINGS_ENV and v is not None}
    return Settings(**values)


def set_fields(name: str) -> set[str]:
    env = {**dockerfile().env, **environment(services()[name])}
    return {SETTINGS_ENV[k] for k, v in env.items() if k in SETTINGS_ENV and v not in (None, "")}


def depends_on(svc: dict[str, Any]) -> dict[str, str]:
    deps = svc.get("depends_on") or {}
    if isinstance(deps, list):
        return {d: "service_started" for d in deps}
    return {d: (spec or {}).get("condition", "service_started") for d, spec in deps.items()}


def restarts_always(svc: dict[str, Any]) -> bool:
    return svc.get("restart") in ("always", "unless-stopped")


def volume_mounts(svc: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume or a host path)."""
    mounts = {}
    for v in svc.get("volumes") or []:
        if isinstance(v, dict):
            mounts[v["target"]] = v.get("source", "")
        else:
            parts = v.split(":")
            if len(parts) >= 2:
                mounts[parts[1]] = parts[0]
    return mounts


def is_named_volume(source: str) -> bool:
    return bool(source) and not source.startswith((".", "/", "~", "$"))


# ---- the Dockerfile --------------------------------------------------------------------------

@dataclass
class Image:
    workdir: str = "/"
    files: dict[str, str] = field(default_factory=dict)   # repo path -> image path
    copied_at: dict[str, int] = field(default_factory=dict)  # repo path -> instruction index
    runs: list[tuple[int, str, str]] = field(default_factory=list)  # (index, workdir, command)
    env: dict[str, str] = field(default_factory=dict)
    volumes: list[str] = field(default_factory=list)
    expose: list[int] = field(default_factory=list)
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None


def _instructions(text: str) -> list[tuple[str, str]]:
    logical, current = [], ""
    for line in text.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip()
        if current.endswith("\\"):
            current = current[:-1] + " "
            continue
        instruction, _, args = current.strip().partition(" ")
        logical.append((instruction.upper(), args.strip()))
        current = ""
    return logical


def _exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]


@lru_cache
def dockerfile() -> Image:
    image = Image()
    for index, (instruction, args) in enumerate(_instructions((ROOT / "Dockerfile").read_text())):
        if instruction == "WORKDIR":
            image.workdir = str(PurePosixPath(image.workdir) / args)
        elif instruction in ("COPY", "ADD"):
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            *sources, dest = parts
            dest_path = PurePosixPath(image.workdir) / dest
            into_dir = dest.endswith("/") or len(sources) > 1 or dest in (".", "./")
            for source in sources:
                target = dest_path / PurePosixPath(source).name if into_dir else dest_path
                image.files[source.rstrip("/")] = str(target)
                image.copied_at[source.rstrip("/")] = index
        elif instruction == "RUN":
            image.runs.append((index, image.workdir, args))
        elif instruction == "ENV":
            image.env.update(dict(pair.split("=", 1) for pair in shlex.split(args)))
        elif instruction == "VOLUME":
            image.volumes += _exec_form(args) if args.startswith("[") else args.split()
        elif instruction == "EXPOSE":
            image.expose += [int(p.split("/")[0]) for p in args.split()]
        elif instruction == "CMD":
            image.cmd = _exec_form(args)
        elif instruction == "ENTRYPOINT":
            image.entrypoint = _exec_form(args)
    return image


@lru_cache
def pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def working_dir(svc: dict[str, Any]) -> str:
    return svc.get("working_dir") or dockerfile().workdir


# ---- commands --------------------------------------------------------------------------------

@dataclass
class Step:
    argv: list[str]
    program: str = ""
    path: tuple[str, ...] = ()      # the subcommand, e.g. ("db", "upgrade")
    params: dict[str, Any] = field(default_factory=dict)


def argv_of(name: str) -> list[str] | None:
    """The command a service's container runs: its `command`, else the image's CMD."""
    svc = services()[name]
    command = svc.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    if command is None and "build" in svc:
        command = dockerfile().cmd
    return command


def split_steps(name: str, argv: list[str]) -> list[list[str]]:
    """`sh -c "a && b && exec c"` -> [a, b, c]; anything else is one step."""
    if len(argv) == 3 and PurePosixPath(argv[0]).name in ("sh", "bash") and argv[1] == "-c":
        script = argv[2]
        for operator in (";", "|", "&", "\n", "`", "$(", ">", "<"):
            if operator in script.replace("&&", " "):
                pytest.fail(f"service {name}: its shell command uses {operator!r}; keep it to "
                            f"`a && b && exec c` so each step can be checked: {script!r}")
        steps = [shlex.split(part) for part in script.split("&&")]
        return [s[1:] if s and s[0] == "exec" else s for s in steps]
    return [argv]


def _subcommand_args(ctx: click.Context) -> list[str]:
    protected = ctx._protected_args if hasattr(ctx, "_protected_args") else ctx.protected_args
    return [*protected, *ctx.args]


def parse_click(group: click.Group, argv: list[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Parse argv with a click group down to its leaf command, as the program would; invoke nothing."""
    ctx = group.make_context(argv[0], argv[1:])
    command: click.Command = group
    path: list[str] = []
    while isinstance(command, click.Group):
        rest = _subcommand_args(ctx)
        if not rest:
            raise click.UsageError(f"missing a subcommand after {' '.join([argv[0], *path])}", ctx)
        sub_name, sub, rest = command.resolve_command(ctx, rest)
        assert sub_name is not None and sub is not None
        path.append(sub_name)
        ctx = sub.make_context(sub_name, rest, parent=ctx)
        command = sub
    return tuple(path), ctx.params


@lru_cache
def ray_cli() -> click.Group:
    from ray.scripts.scripts import cli

    return cli


@lru_cache
def ray_default_port() -> int:
    from ray._private import ray_constants

    return ray_constants.DEFAULT_PORT


def parse_step(name: str, argv: list[str]) -> Step:
    if not argv:
        pytest.fail(f"service {name}: an empty command")
    program = argv[0]
    step = Step(argv=argv, program=program)
    try:
        if program == "clipsweep":
            step.path, step.params = parse_click(service.cli.main, argv)
        elif program == "ray":
            step.path, step.params = parse_click(ray_cli(), argv)
        elif program == "alembic":
            from alembic.config import CommandLine

            options = CommandLine(prog="alembic").parser.parse_args(argv[1:])
            if not hasattr(options, "cmd"):
                pytest.fail(f"service {name}: `{shlex.join(argv)}` names no alembic command")
            fn, positional, _ = options.cmd
            step.path = (fn.__name__,)
            step.params = {"config": options.config, **{k: getattr(options, k) for k in positional}}
        else:
            pytest.fail(f"service {name}: runs {program!r}, which is none of the programs the image "
                        "installs (clipsweep, alembic, ray)")
    except (click.ClickException, click.exceptions.Exit) as exc:
        message = exc.format_message() if isinstance(exc, click.ClickException) else "it asks for help"
        pytest.fail(f"service {name}: `{shlex.join(argv)}` is refused by {program}'s parser: {message}")
    except SystemExit:  # argparse prints the reason to stderr
        pytest.fail(f"service {name}: `{shlex.join(argv)}` is refused by alembic's parser (see stderr)")
    return step


def steps_of(name: str) -> list[Step]:
    argv = argv_of(name)
    return [] if argv is None else [parse_step(name, s) for s in split_steps(name, argv)]


def main_step(name: str) -> Step | None:
    steps = steps_of(name)
    return steps[-1] if steps else None


def is_serve(step: Step | None) -> bool:
    return step is not None and step.program == "clipsweep" and step.path == ("serve",)


def runs_driver(step: Step | None) -> bool:
    """A Ray Tune driver: `clipsweep worker`, or `clipsweep serve` with its embedded worker."""
    if step is None or step.program != "clipsweep":
        return False
    return step.path == ("worker",) or (step.path == ("serve",) and step.params.get("worker", True))


def is_migration(step: Step | None) -> bool:
    if step is None:
        return False
    return ((step.program == "clipsweep" and step.path == ("db", "upgrade"))
            or (step.program == "alembic" and step.path == ("upgrade",)))


def is_ray_head(step: Step | None) -> bool:
    return step is not None and step.program == "ray" and step.path == ("start",) and step.params["head"]


def is_ray_node(step: Step | None) -> bool:
    """`ray start --address=...`: a node that joins the head (a trainer, or a driver's own node)."""
    return (step is not None and step.program == "ray" and step.path == ("start",)
            and not step.params["head"])


def services_where(predicate: Any) -> list[str]:
    return [n for n in SERVICE_NAMES if predicate(main_step(n))]


def ray_head() -> tuple[str, int]:
    heads = services_where(is_ray_head)
    assert len(heads) == 1, f"expected exactly one service running `ray start --head`, found {heads}"
    return heads[0], main_step(heads[0]).params["port"] or ray_default_port()


def database_services() -> list[str]:
    return [n for n in SERVICE_NAMES
            if any(s.program in ("clipsweep", "alembic") and s.path != () for s in steps_of(n))]


# ---- every service ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_has_an_image_or_a_build(name: str) -> None:
    svc = services()[name]
    assert "image" in svc or "build" in svc, f"service {name}: has neither `image` nor `build`"
    if "build" in svc:
        build = svc["build"]
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile_name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        path = (COMPOSE_FILE.parent / context / dockerfile_name).resolve()
        assert path == (ROOT / "Dockerfile").resolve(), (
            f"service {name}: builds from {path}; these tests read {ROOT / 'Dockerfile'}")


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_service_command_parses_with_the_real_cli(name: str) -> None:
    svc = services()[name]
    steps = steps_of(name)  # fails with the service's name if a parser refuses a step
    if not steps:
        assert "build" not in svc, f"service {name}: builds clipsweep's image but runs no command"
        return
    for step in steps[:-1]:
        # Steps before the last must end for the next one to start.
        assert not step.params.get("block"), (
            f"service {name}: `{shlex.join(step.argv)}` blocks, so the steps after it never run")
    last = steps[-1]
    if last.program == "ray":
        assert last.path == ("start",), f"service {name}: runs `ray {' '.join(last.path)}`, not `ray start`"
        assert last.params["block"], (
            f"service {name}: `{shlex.join(last.argv)}` has no --block: ray start returns at once and "
            "the container exits")
    if last.program == "clipsweep":
        assert last.path in {("serve",), ("worker",), ("scheduler",), ("db", "upgrade")}, (
            f"service {name}: runs `clipsweep {' '.join(last.path)}`, which is not a service command "
            "(serve, worker, scheduler, db upgrade)")
    if is_migration(last):
        assert not restarts_always(svc), (
            f"service {name}: runs the one-shot `{shlex.join(last.argv)}` with restart "
            f"{svc['restart']!r}: it would run again and again and never complete")


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_ray_start_flags_are_a_head_or_a_node_joining_it(name: str) -> None:
    for step in steps_of(name):
        if step.program != "ray":
            continue
        head, address = step.params["head"], step.params["address"]
        assert head != bool(address), (
            f"service {name}: `{shlex.join(step.argv)}` needs exactly one of --head and --address")
        if address:
            head_name, head_port = ray_head()
            assert address == f"{head_name}:{head_port}", (
                f"service {name}: joins Ray at {address!r}, but the head is service {head_name!r} "
                f"on port {head_port}")
            assert step.params["port"] is None, f"service {name}: --port is for the head only"
        assert services()[name].get("shm_size"), (
            f"service {name}: runs a Ray node without shm_size; Docker's 64 MB /dev/shm makes Ray's "
            "object store fall back to disk")


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_depends_on_names_existing_services_with_sensible_conditions(name: str) -> None:
    for dep, condition in depends_on(services()[name]).items():
        assert dep in services(), f"service {name}: depends on {dep!r}, which is not a service"
        assert dep != name, f"service {name}: depends on itself"
        assert condition in DEPENDS_CONDITIONS, (
            f"service {name}: depends on {dep} with condition {condition!r}; allowed: "
            f"{sorted(DEPENDS_CONDITIONS)}")
        target = services()[dep]
        if condition == "service_healthy":
            healthcheck = target.get("healthcheck") or {}
            assert healthcheck.get("test") and not healthcheck.get("disable"), (
                f"service {name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
        if condition == "service_completed_successfully":
            assert is_migration(main_step(dep)) and not restarts_always(target), (
                f"service {name}: waits for {dep} to complete, but {dep} is a long-running service "
                f"(`{shlex.join(argv_of(dep) or [])}`, restart {target.get('restart')!r}) and never completes")
        else:
            assert not is_migration(main_step(dep)), (
                f"service {name}: depends on the one-shot {dep} with {condition!r}; it must wait for "
                "service_completed_successfully, or it may start before the schema is upgraded")


def test_depends_on_has_no_cycle() -> None:
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"dependency cycle: {' -> '.join(trail + [name])}"
        state[name] = "open"
        for dep in depends_on(services()[name]):
            if dep in services():
                visit(dep, trail + [name])
        state[name] = "done"

    for name in SERVICE_NAMES:
        visit(name, [])


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_named_volumes_are_declared(name: str) -> None:
    declared = set(compose().get("volumes") or {})
    for target, source in volume_mounts(services()[name]).items():
        if is_named_volume(source):
            assert source in declared, (
                f"service {name}: mounts volume {source!r} at {target}, but the top-level `volumes:` "
                f"declares only {sorted(declared)}")


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_clipsweep_variables_are_settings_fields(name: str) -> None:
    env = environment(services()[name])
    unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in SETTINGS_ENV.keys() | TRAINER_ENV)
    assert not unknown, (
        f"service {name}: sets {unknown}, which no field of service.settings.Settings reads "
        f"(known: {sorted(SETTINGS_ENV)}; read by the trainers: {sorted(TRAINER_ENV)})")
    settings_for(name)  # and the values validate (a port is an int, ...)


# ---- the database ----------------------------------------------------------------------------

def postgres_services() -> list[str]:
    return [n for n in SERVICE_NAMES
            if str(services()[n].get("image", "")).split(":")[0].split("/")[-1] == "postgres"]


def postgres_credentials(name: str) -> dict[str, str]:
    env = environment(services()[name])
    user = env.get("POSTGRES_USER") or "postgres"
    return {"user": user, "password": env.get("POSTGRES_PASSWORD") or "",
            "db": env.get("POSTGRES_DB") or user, "port": env.get("PGPORT") or "5432"}


def test_postgres_has_a_healthcheck_and_a_volume() -> None:
    names = postgres_services()
    assert len(names) == 1, f"expected one postgres service, found {names}"
    name = names[0]
    svc, creds = services()[name], postgres_credentials(name)
    assert creds["password"], f"service {name}: POSTGRES_PASSWORD is not set; the image refuses to start"
    test = (svc.get("healthcheck") or {}).get("test")
    assert test, f"service {name}: has no healthcheck, so nothing can wait until it accepts connections"
    words = shlex.split(test[1]) if test[0] == "CMD-SHELL" else test[1:]
    assert words and words[0] == "pg_isready", f"service {name}: the healthcheck does not run pg_isready: {test}"
    flags = dict(zip(words[1::2], words[2::2]))
    assert flags.get("-U", creds["user"]) == creds["user"], (
        f"service {name}: pg_isready checks user {flags.get('-U')!r}, POSTGRES_USER is {creds['user']!r}")
    assert flags.get("-d", creds["db"]) == creds["db"], (
        f"service {name}: pg_isready checks database {flags.get('-d')!r}, POSTGRES_DB is {creds['db']!r}")
    tag = str(svc["image"]).partition(":")[2]
    major = int(tag.split(".")[0].split("-")[0]) if tag[:1].isdigit() else 18
    pgdata = environment(svc).get("PGDATA") or (
        "/var/lib/postgresql/data" if major < 18 else "/var/lib/postgresql")
    mounts = volume_mounts(svc)
    assert pgdata in mounts and is_named_volume(mounts[pgdata]), (
        f"service {name}: postgres {tag or 'latest'} keeps its data in {pgdata}, but no named volume is "
        f"mounted there (mounts: {mounts}); the data would go with the container")


def test_one_migration_runs_once_after_postgres_is_healthy() -> None:
    migrations = services_where(is_migration)
    assert len(migrations) == 1, f"expected one service that upgrades the schema, found {migrations}"
    name = migrations[0]
    postgres = postgres_services()[0]
    assert depends_on(services()[name]).get(postgres) == "service_healthy", (
        f"service {name}: must depend on {postgres} with condition service_healthy, has "
        f"{depends_on(services()[name])}")
    step = main_step(name)
    if step.program == "alembic":
        assert step.params["revision"] == "head", f"service {name}: upgrades to {step.params['revision']!r}, not head"
        ini = step.params["config"] or "alembic.ini"
        image_path = str(PurePosixPath(working_dir(services()[name])) / ini)
        assert (ROOT / "alembic.ini").is_file(), "alembic.ini is missing from the repository root"
        assert dockerfile().files.get("alembic.ini") == image_path, (
            f"service {name}: alembic reads {image_path}, but the Dockerfile copies alembic.ini to "
            f"{dockerfile().files.get('alembic.ini')}")
        config = configparser.ConfigParser()
        config.read(ROOT / "alembic.ini")
        assert not config.get("alembic", "sqlalchemy.url", fallback=None), (
            "alembic.ini sets sqlalchemy.url: the migrate service would ignore CLIPSWEEP_DATABASE_URL")
        scripts = config.get("alembic", "script_location")
        assert (ROOT / scripts / "env.py").is_file(), f"alembic.ini's script_location {scripts!r} has no env.py"
        assert dockerfile().files.get(scripts) == str(PurePosixPath(working_dir(services()[name])) / scripts), (
            f"service {name}: alembic looks for {scripts}/ in {working_dir(services()[name])}, but the "
            f"Dockerfile copies it to {dockerfile().files.get(scripts)}")


def test_services_that_open_the_database_wait_for_the_migration() -> None:
    migration = services_where(is_migration)[0]
    for name in SERVICE_NAMES:
        step = main_step(name)
        if is_serve(step) or runs_driver(step):
            assert depends_on(services()[name]).get(migration) == "service_completed_successfully", (
                f"service {name}: runs `{shlex.join(step.argv)}`, which refuses a database at another "
                f"revision; it must depend on {migration} with condition service_completed_successfully")


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_database_url_points_at_the_compose_postgres(name: str) -> None:
    url_text = environment(services()[name]).get(ENV_PREFIX + "DATABASE_URL")
    if name in database_services():
        assert url_text, (
            f"service {name}: runs clipsweep against the database but does not set "
            f"{ENV_PREFIX}DATABASE_URL, so it would use its own SQLite file")
    if not url_text:
        return
    assert "database_url" in Settings.model_fields
    url = make_url(url_text)
    postgres = postgres_services()[0]
    creds = postgres_credentials(postgres)
    assert url.get_backend_name() == "postgresql", f"service {name}: the database URL is not PostgreSQL: {url_text}"
    assert url.get_driver_name() == "psycopg", (
        f"service {name}: the URL's driver is {url.get_driver_name()!r}; the package installs psycopg "
        "(postgresql+psycopg://)")
    assert url.host == postgres, f"service {name}: the database host is {url.host!r}, the service is {postgres!r}"
    assert str(url.port or 5432) == creds["port"], (
        f"service {name}: database port {url.port}, postgres listens on {creds['port']}")
    assert url.username == creds["user"], (
        f"service {name}: database user {url.username!r}, POSTGRES_USER is {creds['user']!r}")
    assert url.password == creds["password"], f"service {name}: the database password differs from POSTGRES_PASSWORD"
    assert url.database == creds["db"], f"service {name}: database {url.database!r}, POSTGRES_DB is {creds['db']!r}"


def test_every_clipsweep_process_uses_the_same_database() -> None:
    urls = {n: environment(services()[n]).get(ENV_PREFIX + "DATABASE_URL") for n in database_services()}
    assert len(set(urls.values())) == 1, f"services use different databases: {urls}"


# ---- the API ---------------------------------------------------------------------------------

def test_the_api_listens_on_all_interfaces_on_its_published_port() -> None:
    apis = services_where(is_serve)
    assert apis, "no service runs `clipsweep serve`"
    for name in apis:
        settings, params = settings_for(name), main_step(name).params
        host = params["host"] or settings.host
        port = params["port"] or settings.port
        assert host == "0.0.0.0", f"service {name}: serves on {host}, unreachable from outside its container"
        published = set()
        for entry in services()[name].get("ports") or []:
            target = entry["target"] if isinstance(entry, dict) else str(entry).split(":")[-1].split("/")[0]
            published.add(int(target))
        assert port in published, f"service {name}: serves on port {port} but publishes {sorted(published)}"


# ---- Ray -------------------------------------------------------------------------------------

def test_the_worker_has_the_settings_it_needs_in_a_cluster() -> None:
    needed = {"database_url", "ray_address", "data_dir"}
    assert needed <= set(Settings.model_fields), f"Settings lost {needed - set(Settings.model_fields)}"
    workers = services_where(lambda s: runs_driver(s) and s.path == ("worker",))
    assert workers, "no service runs `clipsweep worker`"
    for name in workers:
        missing = needed - set_fields(name)
        assert not missing, (
            f"service {name}: runs the Tune driver but does not set "
            f"{sorted(ENV_PREFIX + m.upper() for m in missing)}")


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_ray_address_points_at_the_head(name: str) -> None:
    address = environment(services()[name]).get(ENV_PREFIX + "RAY_ADDRESS")
    if not address:
        return
    head_name, head_port = ray_head()
    assert address == f"{head_name}:{head_port}", (
        f"service {name}: {ENV_PREFIX}RAY_ADDRESS is {address!r}; the head is service {head_name!r} on "
        f"port {head_port} (ray start --head --port)")


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_a_driver_joins_the_cluster_before_it_connects(name: str) -> None:
    """ray.init(address=...) attaches a driver to a raylet on its own machine (it looks for a local
    raylet process); in a container of its own the driver needs `ray start --address` first."""
    steps = steps_of(name)
    if not steps or not runs_driver(steps[-1]):
        return
    address = settings_for(name).ray_address
    if not address or address.startswith("ray://"):
        return
    joins = [s for s in steps[:-1] if is_ray_node(s) and s.params["address"] == address]
    assert joins, (
        f"service {name}: connects its Tune driver to {address} without a Ray node of its own; run "
        f"`ray start --address={address} && exec {shlex.join(steps[-1].argv)}`")
    head_name, _ = ray_head()
    assert depends_on(services()[name]).get(head_name) in ("service_started", "service_healthy"), (
        f"service {name}: joins the Ray head but does not depend on {head_name}")


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_ray_nodes_start_after_the_head(name: str) -> None:
    if not any(is_ray_node(step) for step in steps_of(name)):
        return
    head_name, _ = ray_head()
    assert depends_on(services()[name]).get(head_name) in ("service_started", "service_healthy"), (
        f"service {name}: joins the Ray head but does not depend on {head_name}")


def gpu_reservations(svc: dict[str, Any]) -> list[dict[str, Any]]:
    devices = (((svc.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or []
    return [d for d in devices if "gpu" in (d.get("capabilities") or [])]


def test_a_ray_worker_reserves_a_gpu() -> None:
    nodes = services_where(is_ray_node)
    assert nodes, "no service runs `ray start --address=...` to train trials"
    reserving = [n for n in nodes if gpu_reservations(services()[n])]
    assert reserving, (
        f"none of the Ray worker services {nodes} reserves a GPU under deploy.resources.reservations.devices")
    for name in reserving:
        for device in gpu_reservations(services()[name]):
            assert device.get("driver", "nvidia") == "nvidia", f"service {name}: GPU driver {device['driver']!r}"
            count = device.get("count")
            assert device.get("device_ids") or count == "all" or (isinstance(count, int) and count >= 1), (
                f"service {name}: a GPU reservation needs count >= 1, count: all, or device_ids; has {device}")
        assert main_step(name).params["num_gpus"] != 0, (
            f"service {name}: reserves a GPU but starts Ray with --num-gpus=0")
        # Ray leaves CUDA_VISIBLE_DEVICES alone for a trial given 0 GPUs unless this is set: a sweep with
        # gpus_per_trial 0 and device auto would then use the GPU without reserving it.
        assert environment(services()[name]).get("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO") == "1", (
            f"service {name}: a GPU Ray node without RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=1 lets trials that "
            "asked for no GPU train on it unreserved")
        for key in ("CLIPSWEEP_DATA_DIR", "CLIPSWEEP_RAY_ADDRESS"):
            assert key in environment(services()[name]), (
                f"service {name}: its own `environment:` replaced the shared one (merge it with `<<: *env`)")


def test_tune_storage_is_shared_by_the_driver_and_every_ray_node() -> None:
    """Trials on the Ray nodes write their experiment directories to the driver's storage path."""
    head_name, _ = ray_head()
    for driver in services_where(runs_driver):
        settings = settings_for(driver)
        storage = (getattr(settings, "tune_storage", None) or str(settings.data_dir / "ray_results"))
        if "://" in storage:
            continue  # cloud storage: nothing to share on disk
        driver_mounts = volume_mounts(services()[driver])
        mount = max((t for t in driver_mounts if storage == t or storage.startswith(t.rstrip("/") + "/")),
                    key=len, default=None)
        assert mount and is_named_volume(driver_mounts[mount]), (
            f"service {driver}: Tune's storage {storage} is not on a named volume (mounts: {driver_mounts})")
        trainers = services_where(is_ray_node)
        if main_step(head_name).params["num_cpus"] != 0:
            trainers.append(head_name)  # the head trains too unless it has no CPUs
        for node in trainers:
            node_mounts = volume_mounts(services()[node])
            assert node_mounts.get(mount) == driver_mounts[mount], (
                f"service {node}: Ray node without volume {driver_mounts[mount]!r} at {mount}, where the "
                f"driver ({driver}) keeps Tune's storage {storage}")


# ---- the Dockerfile --------------------------------------------------------------------------

def test_dockerfile_installs_the_package_with_its_sources() -> None:
    image = dockerfile()
    installs = [(i, w, c) for i, w, c in image.runs
                if re.search(r"\bpip install\b", c) and re.search(r"(^|\s)(\.|/app)(\[[\w,]+\])?(\s|$)", c)]
    assert installs, "the Dockerfile never runs `pip install .`, so `clipsweep` is not on PATH"
    index, workdir, _ = installs[-1]
    project = pyproject()
    needed = ["pyproject.toml", project["project"]["readme"]]
    needed += [p.rstrip("*").rstrip(".") for p in project["tool"]["setuptools"]["packages"]["find"]["include"]]
    for path in needed:
        assert path in image.files, f"the Dockerfile does not copy {path}, which `pip install .` needs"
        assert image.copied_at[path] < index, f"the Dockerfile copies {path} after `pip install .`"
        assert image.files[path] == str(PurePosixPath(workdir) / path), (
            f"the Dockerfile copies {path} to {image.files[path]}, not into {workdir} where pip installs from")
    for path in ("alembic.ini", "migrations"):
        assert path in image.files, f"the Dockerfile does not copy {path}"


def test_the_programs_the_services_run_are_installed_by_the_package() -> None:
    project = pyproject()["project"]
    scripts = project.get("scripts", {})
    module, _, attr = scripts.get("clipsweep", ":").partition(":")
    assert module == service.cli.__name__ and attr == "main", (
        f"pyproject's `clipsweep` script is {scripts.get('clipsweep')!r}, not service.cli:main")
    dependencies = {Requirement(d).name.lower() for d in project["dependencies"]}
    programs = {s.program for n in SERVICE_NAMES for s in steps_of(n)}
    if dockerfile().cmd:
        programs.add(dockerfile().cmd[0])
    for program in programs - {"clipsweep"}:
        assert program in dependencies, (
            f"the services run {program!r}, but the package does not depend on it: {sorted(dependencies)}")


def test_dockerfile_cmd_and_environment_are_consistent() -> None:
    image = dockerfile()
    assert image.entrypoint is None, (
        "the Dockerfile sets an ENTRYPOINT: compose's `command:` lists full commands and would be "
        "appended to it")
    assert image.cmd, "the Dockerfile has no CMD"
    step = parse_step("(Dockerfile CMD)", image.cmd)
    unknown = sorted(k for k in image.env if k.startswith(ENV_PREFIX) and k not in SETTINGS_ENV.keys() | TRAINER_ENV)
    assert not unknown, f"the Dockerfile sets {unknown}, which no Settings field reads"
    values = {SETTINGS_ENV[k]: v for k, v in image.env.items() if k in SETTINGS_ENV}
    settings = Settings(**values)
    assert str(settings.data_dir) in image.volumes, (
        f"the image's data dir {settings.data_dir} is not a VOLUME ({image.volumes})")
    if is_serve(step):
        port = step.params["port"] or settings.port
        assert port in image.expose, f"the image's CMD serves on {port} but EXPOSEs {image.expose}"
        assert (step.params["host"] or settings.host) == "0.0.0.0", "the image's CMD serves on loopback only"


# ---- secrets and exposure ----------------------------------------------------------------------

def test_secrets_come_from_the_env_file_and_compose_refuses_to_start_without_them() -> None:
    text = COMPOSE_FILE.read_text()
    for secret in ("POSTGRES_PASSWORD", "RAY_AUTH_TOKEN"):
        assert re.search(r"\$\{" + secret + r":\?", text), f"{secret} is not required from .env (${{{secret}:?...}})"
    postgres = postgres_services()[0]
    assert postgres_credentials(postgres)["password"] == "required-postgres_password", (
        "POSTGRES_PASSWORD has a value of its own in the compose file: no default password")


def test_the_api_answers_only_with_a_token_and_is_the_only_published_port() -> None:
    apis = services_where(is_serve)
    for name in SERVICE_NAMES:
        published = services()[name].get("ports") or []
        if name in apis:
            assert settings_for(name).auth == "token", f"service {name}: publishes the API with auth off"
        else:
            assert not published, f"service {name}: publishes {published}; only the API may be reachable"
