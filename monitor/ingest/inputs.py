"""Reading CSV/JSONL files into contract messages, for `produce`, `replay` and `classify`.

Columns default to `text`, `published_at`, `entity`, `source`, `id` and can be renamed
with the command-line column options. Other columns are kept as metadata. An entity cell
may hold several symbols separated by ';' or ','.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class InputError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Columns:
    text: str = "text"
    time: str = "published_at"
    entity: str = "entity"
    source: str = "source"
    id: str = "id"


def _is_jsonl(path: Path) -> bool:
    return path.suffix.lower() in (".jsonl", ".ndjson", ".json")


def read_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, row or None, error or None) for every row; never raises on a bad row."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"input file {str(p)!r} does not exist")
    if _is_jsonl(p):
        with p.open("rb") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
                    yield n, None, f"line {n}: not a JSON object ({type(exc).__name__})"
                    continue
                if not isinstance(obj, dict):
                    yield n, None, f"line {n}: not a JSON object"
                    continue
                yield n, obj, None
        return
    csv.field_size_limit(64 * 1024 * 1024)
    with p.open(newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise InputError(f"{str(p)!r} has no header row; CSV inputs need one (e.g. text,published_at,entity)")
        for n, row in enumerate(reader, start=2):
            yield n, {k: v for k, v in row.items() if k is not None}, None


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def to_message(row: dict[str, Any], cols: Columns) -> dict[str, Any]:
    """Map a file row to a contract message (field names of CONTRACT.md)."""
    msg: dict[str, Any] = {}
    for k, v in row.items():
        if k in (cols.text, cols.time, cols.entity, cols.source, cols.id) or _blank(v):
            continue
        msg[k] = v
    if cols.text in row:
        msg["text"] = row[cols.text]
    if not _blank(row.get(cols.time)):
        msg["published_at"] = row[cols.time]
    if not _blank(row.get(cols.source)):
        msg["source"] = row[cols.source]
    if not _blank(row.get(cols.id)):
        msg["id"] = str(row[cols.id]).strip()
    ents = split_entity_cell(row.get(cols.entity))
    if ents:
        msg["tickers"] = sorted({*ents, *(msg.get("tickers") or [])}) if isinstance(msg.get("tickers"), list) else ents
    return msg


def check_columns(path: str | Path, cols: Columns) -> None:
    """Fail early, naming the option, when the text column is not in the file."""
    for _n, row, _err in read_records(path):
        if row is None:
            continue
        if cols.text not in row:
            raise InputError(
                f"column {cols.text!r} not in {str(path)!r}; columns are {sorted(row)} (use --text-column)"
            )
        return


def split_entity_cell(cell: object) -> list[str]:
    """A CSV/JSONL entity cell may hold several symbols separated by ';' or ','."""
    if cell is None:
        return []
    if isinstance(cell, list | tuple):
        return [str(c).strip().lstrip("$").upper() for c in cell if str(c).strip()]
    s = str(cell).strip()
    if not s or s.lower() == "nan":
        return []
    return [p.strip().lstrip("$").upper() for p in re.split(r"[;,]", s) if p.strip()]
