"""Reading compose.yaml the way Docker Compose does, for the deployment tests (no Docker needed).

`load` parses a compose file and interpolates `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
`${VAR:?error}`, `${VAR?error}`, `${VAR:+alt}`, `${VAR+alt}` and `$$` in every value, with
nesting, as the Compose Specification describes; `service_env` and `service_command` give a
service's effective environment and command after the `<<: *anchor` merges.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "compose.yaml"
COMPOSE_GPU = ROOT / "compose.gpu.yaml"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?", re.S)


class MissingVariable(ValueError):
    """A `${VAR:?message}` whose variable is unset (or empty)."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "$":
            out.append(text[i])
            i += 1
            continue
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("${", i):
            depth, j = 0, i + 1
            while j < len(text):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            if j >= len(text):
                raise ValueError(f"unclosed ${{ in {text!r}")
            out.append(_expand(text[i + 2 : j], env))
            i = j + 1
            continue
        m = _NAME.match(text, i + 1)
        if m:
            out.append(env.get(m.group(0), ""))
            i = m.end()
            continue
        out.append("$")
        i += 1
    return "".join(out)


def _expand(body: str, env: Mapping[str, str]) -> str:
    m = _BRACED.fullmatch(body)
    if not m:
        raise ValueError(f"bad substitution ${{{body}}}")
    name, op, arg = m.group("name"), m.group("op"), m.group("arg") or ""
    value = env.get(name)
    if op is None:
        return value or ""
    if op == ":-":
        return value if value else interpolate(arg, env)
    if op == "-":
        return value if value is not None else interpolate(arg, env)
    if op == ":?":
        if not value:
            raise MissingVariable(f"{name}: {interpolate(arg, env)}")
        return value
    if op == "?":
        if value is None:
            raise MissingVariable(f"{name}: {interpolate(arg, env)}")
        return value
    if op == ":+":
        return interpolate(arg, env) if value else ""
    return interpolate(arg, env) if value is not None else ""  # "+"


def _walk(node: Any, env: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [_walk(v, env) for v in node]
    if isinstance(node, dict):
        return {k: _walk(v, env) for k, v in node.items()}
    return node


def raw(path: Path = COMPOSE) -> dict[str, Any]:
    """The parsed file, anchors merged, nothing interpolated."""
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def load(path: Path = COMPOSE, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The parsed file with every value interpolated from `env` (default: only POSTGRES_PASSWORD)."""
    return _walk(raw(path), {"POSTGRES_PASSWORD": "compose-test"} if env is None else env)


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["KEY=value", "KEY"]
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def service_command(service: Mapping[str, Any]) -> list[str]:
    cmd = service.get("command")
    assert isinstance(cmd, list), f"use the exec (list) form for commands, got {cmd!r}"
    return [str(c) for c in cmd]


def duration_seconds(text: str) -> float:
    """A Compose duration like 1m30s, 60s, 500ms."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", text)
    assert parts and "".join(a + b for a, b in parts) == text, f"not a duration: {text!r}"
    return sum(float(n) * units[u] for n, u in parts)
