"""Alerts: timeline, filters, one alert with its numbers and evidence, acknowledge and
silence. Deep link: `/Alerts?alert=<id>` (the link every alert message carries)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboards import charts, fmt, ui
from dashboards import queries as q
from monitor.alerting import queries, silences
from monitor.alerting.matchers import Matcher, MatcherError, parse_matcher
from monitor.alerting.message import lift_text

DURATIONS = {"1 hour": 1, "4 hours": 4, "12 hours": 12, "1 day": 24, "3 days": 72, "1 week": 168}

st.title("Alerts")


def _label(row: dict) -> str:
    t = row.get("fired_at")
    t = t if t is not None and not pd.isna(t) else row.get("started_at")
    return f"{row['state']} · {row['kind']} {ui.safe_text(row['key'])} · {ui.fmt_time(t)}"


def _num(numbers: dict, *names: str) -> float | None:
    for n in names:
        v = numbers.get(n)
        if isinstance(v, int | float) and not isinstance(v, bool):
            return float(v)
    return None


def _actions(alert: dict, who: str) -> None:
    eng = ui.engine()
    now = datetime.now(UTC)
    c1, c2 = st.columns(2)
    with c1:
        st.markdown("**Acknowledge**")
        if alert.get("acknowledged_at"):
            st.text(
                f"Acknowledged by {ui.safe_text(alert.get('acknowledged_by'))} at {ui.fmt_time(alert['acknowledged_at'])}"
            )
        elif st.button(
            "Acknowledge", key="al_ack", help="Stops repeat notifications; the resolved message still goes out."
        ):
            if queries.acknowledge(eng, alert["id"], who, now):
                ui.clear_cache()
                st.session_state["al_flash"] = f"Acknowledged by {who}."
                st.rerun()
            st.warning("Already acknowledged.")
    with c2:
        st.markdown("**Silence this key**")
        with st.form("al_silence", clear_on_submit=False):
            dur = st.selectbox("For", list(DURATIONS), index=1, key="al_sil_dur")
            extra = st.text_input(
                "Extra matchers (optional, comma separated)",
                placeholder="severity=warning",
                key="al_sil_extra",
                help="label op value, labels: rule, key_kind, key_value, topic, severity; ops =, !=, =~, !~",
            )
            comment = st.text_input("Comment", max_chars=500, key="al_sil_comment")
            go = st.form_submit_button("Silence", key="al_sil_go")
        if go:
            try:
                ms = [Matcher("key_kind", alert["key_kind"]), Matcher("key_value", alert["key_value"])]
                ms += [parse_matcher(part) for part in extra.split(",") if part.strip()]
                sil = silences.add_silence(
                    eng, ms, now=now, duration=timedelta(hours=DURATIONS[dur]), created_by=who, comment=comment
                )
            except (MatcherError, ValueError) as exc:
                st.error(ui.safe_text(str(exc)))
            else:
                ui.clear_cache()
                st.session_state["al_flash"] = f"Silence {sil.id[:8]} added until {ui.fmt_time(sil.ends_at)}."
                st.rerun()


def _detail(alert: dict) -> None:
    st.subheader("Alert")
    st.caption(f"id {alert['id']} · link: {ui.settings().dashboard_url.rstrip('/')}/Alerts?alert={alert['id']}")
    numbers = alert.get("numbers") or {}
    view = {
        "id": alert["id"],
        "state": alert["state"],
        "severity": alert["severity"],
        "key": f"{alert['key_kind']} {alert['key_value']}",
        "topic": alert.get("topic"),
        "started": ui.fmt_time(alert["started_at"]),
        "fired": ui.fmt_time(alert.get("fired_at")),
        "resolved": ui.fmt_time(alert.get("resolved_at")),
        "window start": ui.fmt_time(alert.get("window_start")),
        "acknowledged by": alert.get("acknowledged_by"),
    }
    share, base = _num(numbers, "share", "window_share"), _num(numbers, "baseline_share", "baseline")
    m = st.columns(6)
    neg, tot = _num(numbers, "negative", "window_negative"), _num(numbers, "total", "window_total")
    m[0].metric("Negative / documents", "-" if neg is None or tot is None else f"{int(neg)} / {int(tot)}")
    stories, copies, horizon = _num(numbers, "stories"), _num(numbers, "copies"), _num(numbers, "window_minutes")
    m[5].metric(
        "Stories / copies",
        "-" if stories is None else f"{int(stories)} / {int(copies or 0)}",
        None if horizon is None else f"over {int(horizon) // 60} h" if horizon >= 60 else f"over {int(horizon)} min",
        delta_color="off",
    )
    m[1].metric(
        "Negative share",
        "-" if share is None else f"{share:.1%}",
        None if share is None or base is None else f"{share - base:+.1%} vs baseline",
        delta_color="inverse",
    )
    m[2].metric("Baseline share", "-" if base is None else f"{base:.1%}")
    lift, p = _num(numbers, "lift"), _num(numbers, "p_value", "pvalue", "p")
    m[3].metric("Lift", lift_text(lift, numbers) or "-")
    m[4].metric("p-value", "-" if p is None else "< 1e-12" if p < 1e-12 else f"{p:.1e}")
    st.dataframe(
        ui.neutralise_frame(pd.DataFrame([{k: (str(v) if v is not None else "-") for k, v in view.items()}])),
        hide_index=True,
        width="stretch",
    )
    if alert.get("summary"):
        st.text(ui.safe_text(alert["summary"]))
    with st.expander("All numbers of the decision"):
        if numbers:
            rows = [{"number": k, "value": v if isinstance(v, int | float) else str(v)} for k, v in numbers.items()]
            df = pd.DataFrame(rows)
            df["value"] = df["value"].map(lambda v: f"{v:.6g}" if isinstance(v, float) else str(v))
            st.dataframe(ui.neutralise_frame(df), hide_index=True, width="stretch")
        else:
            st.text("The detector recorded no numbers for this alert.")
    st.markdown("**Evidence: negative documents in the alert window**")
    ev = ui.cached(q.alert_evidence, alert)
    if ev.empty:
        st.text("No negative documents found for this key in the alert window.")
    else:
        cols = [
            "published_at",
            "source",
            "sentiment_score",
            "title",
            "text",
            "url",
            "kafka_topic",
            "kafka_partition",
            "kafka_offset",
            "duplicate_of",
            "id",
        ]
        st.dataframe(
            ui.local(ui.neutralise_frame(ev[cols]), "published_at"),
            hide_index=True,
            width="stretch",
            column_config={
                "url": st.column_config.LinkColumn("link"),
                "sentiment_score": st.column_config.NumberColumn("negative score", format="%.3f"),
            },
        )
    full = queries.get_alert(ui.engine(), alert["id"])
    hist = pd.DataFrame((full or {}).get("notifications") or [])
    st.markdown("**Notifications**")
    if hist.empty:
        st.text("No notifications recorded for this alert.")
    else:
        st.dataframe(ui.neutralise_frame(hist), hide_index=True, width="stretch")


def _link_pick() -> None:
    """The URL follows the alert the user opens, so it can be shared."""
    picked = st.session_state.get("al_pick")
    if picked:
        st.query_params["alert"] = picked
        st.session_state["_al_linked"] = picked


if ui.db_ready():
    flash = st.session_state.pop("al_flash", None)
    if flash:
        st.success(ui.safe_text(flash))
    start, end = ui.time_range()
    ui.range_caption(start, end)
    f1, f2, f3, f4 = st.columns([2, 2, 2, 1])
    states = f1.multiselect("State", ["firing", "pending", "resolved"], key="al_state")
    kinds = f2.multiselect("Kind", ["topic", "entity"], key="al_kind")
    key_text = f3.text_input("Key contains", key="al_key", max_chars=128)
    unfired = f4.checkbox("Unfired too", key="al_unfired", help="Pending spikes that did not hold")
    al = ui.cached(
        q.alert_list, start, end, states=tuple(states), kinds=tuple(kinds), key_text=key_text, include_unfired=unfired
    )

    @st.fragment(run_every=ui.refresh_every())
    def overview_part() -> None:
        start, end = ui.time_range()
        al = ui.cached(
            q.alert_list,
            start,
            end,
            states=tuple(states),
            kinds=tuple(kinds),
            key_text=key_text,
            include_unfired=unfired,
        )
        if al.empty:
            st.info("No alerts match these filters in this time range.")
            return
        n_firing = int((al["state"] == "firing").sum())
        st.caption(f"{len(al)} alert{'s' if len(al) != 1 else ''}, {n_firing} firing.")
        st.altair_chart(charts.timeline(al, end), width="stretch")
        show = al[
            [
                "state",
                "kind",
                "key",
                "topic",
                "started_at",
                "fired_at",
                "resolved_at",
                "window_share",
                "baseline_share",
                "window_negative",
                "window_total",
                "acknowledged_by",
                "id",
            ]
        ]
        st.dataframe(
            ui.local(
                ui.neutralise_frame(fmt.as_points(show, "window_share", "baseline_share")),
                "started_at",
                "fired_at",
                "resolved_at",
            ),
            hide_index=True,
            width="stretch",
            column_config={
                "window_share": st.column_config.NumberColumn("share", format=fmt.SHARE_FORMAT),
                "baseline_share": st.column_config.NumberColumn("baseline", format=fmt.SHARE_FORMAT),
            },
        )

    def open_section() -> None:
        """One alert: a deep link's, or the one picked below the list."""
        wanted = st.query_params.get("alert")
        options = al["id"].tolist()
        labels = {r["id"]: _label(r) for r in al.to_dict("records")}
        if wanted and wanted not in labels:
            row = ui.cached(q.alert_row, wanted)
            if row is None:
                st.warning(f"There is no alert with id {ui.safe_text(wanted)[:80]!r} in this database.")
            else:
                options.insert(0, wanted)
                labels[wanted] = _label({**row, "kind": row["key_kind"], "key": row["key_value"]})
        if wanted in labels and st.session_state.get("_al_linked") != wanted:
            st.session_state["al_pick"] = wanted  # honour a deep link once, then let the user choose
            st.session_state["_al_linked"] = wanted
        if options:
            picked = st.selectbox(
                "Open alert", options, key="al_pick", format_func=lambda i: labels.get(i, i), on_change=_link_pick
            )
            alert = ui.cached(q.alert_row, picked) if picked else None
            if alert is not None:
                _detail(alert)
                _actions(alert, ui.current_user())

    # A deep link (?alert=<id>) opens the alert above the list; otherwise the list comes first.
    if st.query_params.get("alert"):
        open_section()
        overview_part()
    else:
        overview_part()
        open_section()

    st.subheader("Silences")
    now = datetime.now(UTC)
    sil = ui.cached(q.silence_list, now.replace(second=0, microsecond=0), include_expired=False)
    if sil.empty:
        st.text("No active or scheduled silences.")
    else:
        st.dataframe(ui.local(ui.neutralise_frame(sil), "starts_at", "ends_at"), hide_index=True, width="stretch")
        ids = sil["id"].tolist()
        c1, c2 = st.columns([3, 1])
        sid = c1.selectbox(
            "Silence",
            ids,
            key="al_sil_pick",
            format_func=lambda i: i[:8] + " · " + ui.safe_text(sil.loc[sil["id"] == i, "matchers"].iloc[0]),
        )
        if c2.button("Expire now", key="al_sil_expire") and sid:
            if silences.expire_silence(ui.engine(), sid, datetime.now(UTC)):
                ui.clear_cache()
                st.session_state["al_flash"] = f"Silence {sid[:8]} expired."
                st.rerun()
            st.warning("That silence has already ended.")
