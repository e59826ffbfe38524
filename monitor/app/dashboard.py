"""`finsent dashboard`: the Streamlit app in `dashboards/app.py`, as a child process.

The app reads its settings the project way (`monitor.config.load_settings()`, from the
environment and FINSENT_CONFIG), so this passes the caller's effective settings down as
FINSENT_* variables: command-line flags (`--db`, ...) reach the app with the precedence
they had here. The TOML file (if any) goes along as FINSENT_CONFIG for what does not fit an
environment variable (channels, routes: the dashboard does not use them, but they must
still validate).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from monitor.config import ENV_PREFIX, Settings

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().parents[2] / "dashboards" / "app.py"
_NOT_IN_ENV = ("channels", "routes")  # secrets and env references: left to FINSENT_CONFIG


def _env_value(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, BaseModel):
        return json.dumps(value.model_dump(mode="json", by_alias=True))
    if isinstance(value, tuple | list):
        if all(isinstance(v, str) for v in value):
            return ",".join(value) if value else None
        return json.dumps([v.model_dump(mode="json", by_alias=True) if isinstance(v, BaseModel) else v for v in value])
    return str(value)


def settings_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a child that calls `load_settings()` and must see `settings`."""
    env = dict(os.environ if base is None else base)
    toml_file = type(settings).model_config.get("toml_file")
    if toml_file:
        env[f"{ENV_PREFIX}CONFIG"] = str(Path(str(toml_file)).resolve())
    for name in type(settings).model_fields:
        if name in _NOT_IN_ENV:
            continue
        val = _env_value(getattr(settings, name))
        key = f"{ENV_PREFIX}{name.upper()}"
        if name == "entities" and val is None:
            val = "[]"
        if val is None:
            env.pop(key, None)
        else:
            env[key] = val
    return env


def command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(int(port)),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # Analysts get the app, not Streamlit's developer menu and "Deploy" button.
        "--client.toolbarMode",
        "viewer",
    ]


def start(settings: Settings, host: str | None = None, port: int | None = None, **popen: Any) -> subprocess.Popen[Any]:
    """Start the dashboard and return the process (for `finsent demo` and tests)."""
    host = host or settings.dashboard_host
    port = int(port or settings.dashboard_port)
    cmd = command(host, port)
    log.info("dashboard on http://%s:%d", host, port)
    return subprocess.Popen(cmd, env=settings_env(settings), cwd=str(APP.parents[1]), **popen)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> int:
    """Run the dashboard in the foreground until it exits or Ctrl-C/SIGTERM; its exit code.

    `host`/`port` default to settings.dashboard_host/port (127.0.0.1:8501)."""
    proc = start(settings, host, port)
    previous = signal.getsignal(signal.SIGTERM)

    def _forward(signum: int, _frame: Any) -> None:
        proc.send_signal(signum)

    try:
        signal.signal(signal.SIGTERM, _forward)
    except ValueError:  # not the main thread
        previous = None
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
