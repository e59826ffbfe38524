"""Overview: volume and negative share per topic, alerts on the charts, top movers, KPIs."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from dashboards import charts, fmt, ui
from dashboards import queries as q

st.title("Overview")
if ui.db_ready():
    s = ui.settings()
    c1, c2 = st.columns([1, 3])
    resolution = c1.selectbox("Resolution", list(q.RESOLUTIONS), index=2, key="ov_resolution")
    start, end = ui.time_range()
    totals = ui.cached(q.key_totals, "topic", start, end)
    topics = totals["key"].tolist()
    default = topics[:6]
    chosen = c2.multiselect("Topics", topics, default=default, key="ov_topics", placeholder="busiest six")

    @st.fragment(run_every=ui.refresh_every())
    def live() -> None:
        start, end = ui.time_range()
        ui.range_caption(start, end)
        k = ui.cached(q.kpis, start, end)
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Documents", f"{k['documents']:,}")
        m2.metric("Negative share", "-" if k["negative_share"] is None else f"{k['negative_share']:.1%}")
        m3.metric("Firing alerts", k["firing_alerts"])
        m4.metric("Dead letters", k["dead_letters"], help=f"{k['dead_letters_in_range']} received in this range")
        if not k["documents"]:
            st.info("No documents in this time range. Pick a longer range in the sidebar, or start the pipeline.")
        step = q.effective_step(start, end, q.RESOLUTIONS[resolution])
        if step != q.RESOLUTIONS[resolution]:
            st.caption(f"Resolution coarsened to {step // 60} minutes to keep the charts readable.")
        keys = tuple(chosen or default)
        df = ui.cached(q.series, "topic", start, end, step, keys, ui.offset_seconds(end))
        al = ui.cached(q.alert_list, start, end, kinds=("topic",))
        if not df.empty:
            df = ui.local(ui.neutralise_frame(df, ("key",)), "bucket")
            marks = charts.alert_rules(al, start, end)
            st.subheader("Volume per topic")
            st.altair_chart(charts.with_alerts(charts.volume(df, "key", "Topic"), marks), width="stretch")
            st.subheader("Negative share per topic")
            st.altair_chart(charts.with_alerts(charts.share(df, "key", "Topic"), marks), width="stretch")
            st.caption("Vertical red rules: topic alerts firing (hover for the topic); grey: resolved.")
        st.subheader("Top movers")
        win = timedelta(minutes=s.detect.window_minutes)
        base = timedelta(days=s.detect.baseline_days)
        mv = ui.cached(q.top_movers, end, win, base)
        st.caption(
            f"Negative share in the last {s.detect.window_minutes} minutes of the range against the "
            f"{s.detect.baseline_days:g} days before it, per topic and company (keys with at least 5 documents "
            "in the window)."
        )
        if mv.empty:
            st.info("No topic or company has enough documents in the last window to compare.")
        else:
            st.dataframe(
                ui.neutralise_frame(fmt.as_points(mv, "window_share", "baseline_share", "change"), ("key",)),
                hide_index=True,
                width="stretch",
                column_config={
                    "window_share": st.column_config.NumberColumn("share now", format=fmt.SHARE_FORMAT),
                    "baseline_share": st.column_config.NumberColumn("baseline", format=fmt.SHARE_FORMAT),
                    "change": st.column_config.NumberColumn("change (points)", format="%+.1f"),
                    "lift": st.column_config.NumberColumn("lift", format="%.1fx"),
                },
            )
        firing = al[al["state"] == "firing"] if not al.empty else al
        if not firing.empty:
            st.subheader("Firing now")
            st.dataframe(
                ui.neutralise_frame(
                    ui.local(firing[["kind", "key", "fired_at", "window_share", "baseline_share"]], "fired_at")
                ),
                hide_index=True,
                width="stretch",
            )

    live()
