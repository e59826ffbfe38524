"""Altair charts shared by the pages (plain data in, chart out)."""

from __future__ import annotations

from datetime import datetime

import altair as alt
import pandas as pd

from dashboards import ui

TIME_FORMAT = "%m-%d %H:%M"
SHARE_AXIS = ".1~%"  # d3: 12.5%, 10%, 0.5%; never a row of zeros


def with_alerts(chart: alt.Chart, marks: alt.Chart) -> alt.LayerChart:
    """A series chart with the alert rules on top; separate colour scales, so the rules'
    state colours do not take over the series' legend."""
    return alt.layer(chart, marks).resolve_scale(color="independent")


def _x(title: str = "time") -> alt.X:
    return alt.X("bucket:T", title=f"{title} ({ui.tz().key})", axis=alt.Axis(format=TIME_FORMAT, labelAngle=0))


def volume(df: pd.DataFrame, series: str, title: str) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_line(point=len(df) < 200)
        .encode(
            x=_x(),
            y=alt.Y("total:Q", title="documents", axis=alt.Axis(format="d", tickMinStep=1)),
            color=alt.Color(f"{series}:N", title=title),
            tooltip=[
                alt.Tooltip("bucket:T", title="time", format="%Y-%m-%d %H:%M"),
                alt.Tooltip(f"{series}:N", title=title),
                alt.Tooltip("total:Q", title="documents"),
                alt.Tooltip("negative:Q", title="negative"),
            ],
        )
        .properties(height=260)
    )


def share(df: pd.DataFrame, series: str, title: str) -> alt.Chart:
    return (
        alt.Chart(df)
        .mark_line(point=len(df) < 200)
        .encode(
            x=_x(),
            y=alt.Y("negative_share:Q", title="negative share", axis=alt.Axis(format=SHARE_AXIS)),
            color=alt.Color(f"{series}:N", title=title),
            tooltip=[
                alt.Tooltip("bucket:T", title="time", format="%Y-%m-%d %H:%M"),
                alt.Tooltip(f"{series}:N", title=title),
                alt.Tooltip("negative_share:Q", title="negative share", format=".1%"),
                alt.Tooltip("negative:Q", title="negative"),
                alt.Tooltip("total:Q", title="documents"),
            ],
        )
        .properties(height=260)
    )


def alert_rules(al: pd.DataFrame, start: datetime, end: datetime) -> alt.Chart:
    """One vertical rule per alert that fired inside [start, end): red while firing, grey
    once resolved."""
    rows = []
    if not al.empty:
        for _, r in al.iterrows():
            t = r["fired_at"] if pd.notna(r["fired_at"]) else r["started_at"]
            if pd.isna(t) or not (pd.Timestamp(start) <= t < pd.Timestamp(end)):
                continue
            rows.append(
                {
                    "at": pd.Timestamp(t).tz_convert(ui.tz()),
                    "alert": f"{r['kind']} {ui.safe_text(r['key'])}",
                    "state": r["state"],
                    "id": r["id"],
                }
            )
    df = pd.DataFrame(rows, columns=["at", "alert", "state", "id"])
    if df.empty:
        df["at"] = pd.Series([], dtype="datetime64[ns, UTC]")
    return (
        alt.Chart(df)
        .mark_rule(strokeWidth=2, strokeDash=[4, 3])
        .encode(
            x="at:T",
            color=alt.Color(
                "state:N",
                scale=alt.Scale(domain=["firing", "resolved", "pending"], range=["#d62728", "#999999", "#ff7f0e"]),
                legend=alt.Legend(title="alert"),
            ),
            tooltip=[
                alt.Tooltip("alert:N"),
                alt.Tooltip("state:N"),
                alt.Tooltip("at:T", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("id:N"),
            ],
        )
    )


def timeline(al: pd.DataFrame, end: datetime) -> alt.Chart:
    """Alerts as bars from start (or firing) to resolution, one row per key."""
    df = al.copy()
    df["from"] = df["fired_at"].fillna(df["started_at"])
    df["to"] = df["resolved_at"].fillna(pd.Timestamp(end))
    df["label"] = df["kind"] + " " + df["key"].map(ui.safe_text)
    df = ui.local(df, "from", "to")
    return (
        alt.Chart(df[["label", "from", "to", "state", "id"]])
        .mark_bar(height=10)
        .encode(
            x=alt.X("from:T", title=f"time ({ui.tz().key})", axis=alt.Axis(format=TIME_FORMAT, labelAngle=0)),
            x2="to:T",
            y=alt.Y("label:N", title=None, sort="-x"),
            color=alt.Color(
                "state:N",
                scale=alt.Scale(domain=["firing", "resolved", "pending"], range=["#d62728", "#999999", "#ff7f0e"]),
            ),
            tooltip=[
                "label:N",
                "state:N",
                alt.Tooltip("from:T", format="%Y-%m-%d %H:%M"),
                alt.Tooltip("to:T", format="%Y-%m-%d %H:%M"),
                "id:N",
            ],
        )
        .properties(height=max(120, 22 * df["label"].nunique()))
    )
