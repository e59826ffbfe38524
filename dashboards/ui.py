"""What every dashboard page shares: settings, the engine, cached queries, the time range,
time zone conversion and the neutralising of untrusted text.

Settings come from `monitor.config.load_settings()` (FINSENT_* environment and
FINSENT_CONFIG, exactly as the other commands read them), once per distinct environment:
`st.cache_resource` holds them, keyed by a snapshot of the FINSENT_ variables, so a
process serving many sessions reads the file once. The engine is cached per database URL;
query results for `QUERY_TTL` seconds (the live fragment refreshes more often than that
only when the user asks for it).
"""

from __future__ import annotations

import contextlib
import hmac
import os
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import pandas as pd
import streamlit as st
from sqlalchemy import Engine

from dashboards import queries as q
from dashboards.directory import Directory
from monitor.config import ConfigError, Settings, load_settings
from monitor.redact import redact_url
from monitor.store.schema import make_engine

QUERY_TTL = 30  # seconds
RANGES: dict[str, timedelta | None] = {
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "All data": None,
    "Custom": None,
}
COMMON_ZONES = (
    "UTC",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Tokyo",
    "Asia/Singapore",
    "Asia/Kolkata",
    "Australia/Sydney",
)


# --- settings and engine -----------------------------------------------------------------


def _env_snapshot() -> tuple[tuple[str, str], ...]:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("FINSENT_")))


@st.cache_resource(show_spinner=False)
def _settings_for(_env: tuple[tuple[str, str], ...]) -> Settings | str:
    try:
        return load_settings()
    except ConfigError as exc:
        return str(exc)


def settings() -> Settings:
    """The project's settings; stops the page with the one-line reason if they are invalid."""
    s = _settings_for(_env_snapshot())
    if isinstance(s, str):
        st.error(f"The dashboard cannot read its configuration: {s}")
        st.stop()
    return s  # type: ignore[return-value]


@st.cache_resource(show_spinner=False)
def _engine_for(url: str) -> Engine:
    return make_engine(url, pool_size=5, max_overflow=5) if url.startswith("postgresql") else make_engine(url)


def engine() -> Engine:
    return _engine_for(settings().database_url)


def db_url() -> str:
    return settings().database_url


def db_ready() -> bool:
    """Render the empty state and return False when there is no schema to read yet."""
    url = db_url()
    if url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        path = make_url(url).database
        if path and path != ":memory:" and not Path(path).exists():
            st.info(
                f"No database yet at {redact_url(url)}. Start the pipeline (`finsent run` or `finsent replay FILE`) "
                "or point the dashboard at one with `--db` / FINSENT_DATABASE_URL."
            )
            return False
    try:
        missing = cached(q.missing_tables)
    except Exception as exc:  # unreachable server, bad credentials: say so instead of a traceback
        st.error(f"Cannot reach the database {redact_url(url)}: {safe_text(type(exc).__name__)}")
        return False
    if missing:
        st.info(
            f"The database {redact_url(url)} has no finsent schema yet (missing: {', '.join(missing)}). "
            "Run `finsent migrate`, or start the pipeline, which creates it."
        )
        return False
    return True


@st.cache_data(ttl=QUERY_TTL, show_spinner=False, max_entries=512)
def _cached_call(name: str, url: str, args: tuple[Any, ...], kwargs: tuple[tuple[str, Any], ...]) -> Any:
    fn = getattr(q, name)
    return fn(_engine_for(url), *args, **dict(kwargs))


def cached(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(engine, *args, **kwargs)` from `dashboards.queries`, cached for QUERY_TTL seconds."""
    return _cached_call(fn.__name__, db_url(), args, tuple(sorted(kwargs.items())))


def clear_cache() -> None:
    """After an alert action: the next read must show it."""
    _cached_call.clear()


@st.cache_resource(show_spinner=False)
def _directory_for(
    enabled: bool, path: str | None, entities: tuple[tuple[str, str, tuple[str, ...]], ...]
) -> Directory:
    return Directory.build(entities, enabled, path)


def directory() -> Directory:
    """Company names and search (the universe and the watchlist), built once per configuration."""
    s = settings()
    ents = tuple((e.symbol, e.name or "", tuple(e.aliases)) for e in s.entities)
    return _directory_for(s.entity_universe.enabled, s.entity_universe.path, ents)


# --- access control -----------------------------------------------------------------------


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets.toml at all
        return False


def gate() -> bool:
    """True when the visitor may see the app.

    * `[auth]` in Streamlit secrets (OIDC, see docs/dashboard.md): `st.login()` first;
    * `dashboard_password` set (FINSENT_DASHBOARD_PASSWORD): a password form, compared in
      constant time;
    * neither: open (the server binds to 127.0.0.1 unless told otherwise).
    """
    if _oidc_configured():
        user = st.user
        if not getattr(user, "is_logged_in", False):
            st.title("finsent")
            st.write("Sign in to see the dashboard.")
            if st.button("Sign in"):
                st.login()
            return False
    pw = settings().dashboard_password
    if pw is None or st.session_state.get("_finsent_auth_ok"):
        return True
    st.title("finsent")
    with st.form("login"):
        given = st.text_input("Password", type="password")
        ok = st.form_submit_button("Enter")
    if ok:
        if hmac.compare_digest(given.encode("utf-8"), pw.get_secret_value().encode("utf-8")):
            st.session_state["_finsent_auth_ok"] = True
            st.rerun()
        st.error("Wrong password.")
    return False


def current_user() -> str:
    """Who performs an alert action: the OIDC identity if there is one, else the name typed
    in the sidebar, else `dashboard`."""
    if _oidc_configured():
        try:
            email = st.user.get("email")
            if email:
                return str(email)[:128]
        except Exception:
            pass
    name = str(st.session_state.get("_who") or "").strip()
    return safe_text(name)[:128] or "dashboard"


# --- untrusted text ------------------------------------------------------------------------

_BIDI = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&=\"'])")


def safe_text(value: Any) -> str:
    """Untrusted text made inert for plain-text display: bidi overrides and isolates shown
    as visible `<U+202E>` marks (they could reorder what an analyst reads), other control
    characters dropped."""
    if value is None:
        return ""
    s = str(value)
    s = _BIDI.sub(lambda m: f"<U+{ord(m.group()):04X}>", s)
    return _CONTROL.sub("", s)


def safe_md(value: Any) -> str:
    """Untrusted text for the rare place that renders markdown: `safe_text`, then every
    markdown, HTML and Streamlit-directive character backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", unicodedata.normalize("NFC", safe_text(value)).replace("\n", " "))


def safe_url(value: Any) -> str | None:
    s = str(value or "").strip()
    return s if s.lower().startswith(("http://", "https://")) and not _BIDI.search(s) else None


def neutralise_frame(df: pd.DataFrame, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """`safe_text` over the text columns of a frame (and only http(s) links kept)."""
    df = df.copy()
    for c in columns or tuple(df.columns):
        if c not in df.columns:
            continue
        if c == "url":
            df[c] = df[c].map(safe_url)
        elif _texty(df[c]):
            df[c] = df[c].map(lambda v: safe_text(v) if isinstance(v, str) else v)
    return df


def _texty(col: pd.Series) -> bool:
    # pandas 3 gives text its own `str` dtype; older versions (and mixed columns) use object.
    return col.dtype == object or pd.api.types.is_string_dtype(col.dtype)


def csv_bytes(df: pd.DataFrame) -> bytes:
    """CSV for download; cells a spreadsheet would run as a formula get a leading quote."""
    out = df.copy()
    for c in out.columns:
        if _texty(out[c]):
            out[c] = out[c].map(
                lambda v: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
            )
    return out.to_csv(index=False).encode("utf-8")


# --- time ----------------------------------------------------------------------------------


def tz() -> ZoneInfo:
    name = st.session_state.get("tz") or "UTC"
    try:
        return ZoneInfo(name)
    except Exception:
        return ZoneInfo("UTC")


def tz_options() -> list[str]:
    browser = None
    with contextlib.suppress(Exception):
        browser = st.context.timezone
    zones = list(COMMON_ZONES)
    if browser and browser not in zones and browser in available_timezones():
        zones.insert(1, browser)
    rest = sorted(z for z in available_timezones() if z not in zones and "/" in z and not z.startswith("Etc/"))
    return zones + rest


def offset_seconds(at: datetime) -> int:
    off = at.astimezone(tz()).utcoffset()
    return int(off.total_seconds()) if off else 0


def local(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """Convert UTC datetime columns to the selected zone (a copy)."""
    df = df.copy()
    zone = tz()
    for c in cols:
        if c in df.columns:
            df[c] = pd.to_datetime(df[c], utc=True).dt.tz_convert(zone)
    return df


def fmt_time(t: Any) -> str:
    if t is None or (isinstance(t, float) and pd.isna(t)) or t is pd.NaT:
        return "-"
    if isinstance(t, str):
        t = datetime.fromisoformat(t)
    ts = pd.Timestamp(t)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert(tz()).strftime("%Y-%m-%d %H:%M %Z")


def time_range() -> tuple[datetime, datetime]:
    """The [start, end) chosen in the sidebar (UTC). Relative ranges end at the newest data
    (a replayed or paused stream still shows its last hours) unless the user anchors them to
    the wall clock."""
    choice = st.session_state.get("range") or "Last 24 hours"
    lo, hi = cached(q.data_bounds)
    now = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    anchor_now = bool(st.session_state.get("anchor_now"))
    end = now if anchor_now or hi is None else hi + timedelta(minutes=1)
    if choice == "Custom":
        days = st.session_state.get("custom_days")
        if isinstance(days, tuple | list) and len(days) == 2:
            zone = tz()
            start = datetime.combine(days[0], datetime.min.time(), zone).astimezone(UTC)
            end = datetime.combine(days[1], datetime.min.time(), zone).astimezone(UTC) + timedelta(days=1)
            return start, end
        choice = "Last 24 hours"
    if choice == "All data":
        return (lo or end - timedelta(days=1)), end
    span = RANGES.get(choice) or timedelta(hours=24)
    return end - span, end


def sidebar() -> None:
    """Shared controls; values live in session state so every page reads the same ones."""
    with st.sidebar:
        st.selectbox("Time range", list(RANGES), index=2, key="range")
        if st.session_state.get("range") == "Custom":
            today = datetime.now(UTC).date()
            st.date_input("Days", value=(today - timedelta(days=7), today), key="custom_days")
        st.checkbox(
            "End at the wall clock", key="anchor_now", help="Off: relative ranges end at the newest stored document."
        )
        st.selectbox("Time zone", tz_options(), index=0, key="tz")
        st.selectbox(
            "Auto-refresh",
            ["off", "15 s", "30 s", "60 s", "5 min"],
            index=2,
            key="refresh",
            help="Live pages re-read the database at this interval.",
        )
        # Not a keyed widget: a plain session value survives st.rerun() and page switches.
        st.session_state["_who"] = st.text_input(
            "Your name (for acks and silences)", value=st.session_state.get("_who", ""), max_chars=64
        )


def refresh_every() -> timedelta | None:
    v = st.session_state.get("refresh") or "30 s"
    return {"15 s": timedelta(seconds=15), "30 s": timedelta(seconds=30), "60 s": timedelta(seconds=60)}.get(
        v, timedelta(minutes=5) if v == "5 min" else None
    )


def range_caption(start: datetime, end: datetime) -> None:
    st.caption(f"{fmt_time(start)} to {fmt_time(end)} · database {redact_url(db_url())}")
