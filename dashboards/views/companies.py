"""Companies: the watchlist and every entity seen, per-company trend, drill-down to documents."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboards import charts, ui
from dashboards import queries as q

st.title("Companies")
if ui.db_ready():
    s = ui.settings()
    start, end = ui.time_range()
    ui.range_caption(start, end)
    seen = ui.cached(q.key_totals, "entity", start, end)
    watch = {e.symbol: (e.name or "", ", ".join(e.aliases)) for e in s.entities}
    table = seen.copy()
    table["watchlist"] = table["key"].isin(list(watch))
    missing = [sym for sym in watch if sym not in set(table["key"])]
    if missing:
        extra = pd.DataFrame({"key": missing, "total": 0, "negative": 0, "positive": 0, "watchlist": True})
        table = pd.concat([table, extra], ignore_index=True)
    table["name"] = table["key"].map(lambda k: watch.get(k, ("", ""))[0])
    table = table.sort_values(["watchlist", "total", "key"], ascending=[False, False, True])
    only_watch = st.toggle("Watchlist only", value=False, disabled=not watch, key="co_watch_only")
    if only_watch:
        table = table[table["watchlist"]]
    if table.empty:
        st.info(
            "No companies yet: no document in this range named one, and the watchlist ([[entities]] in the "
            "configuration) is empty."
        )
    else:
        st.caption(f"{int(table['watchlist'].sum())} on the watchlist, {len(seen)} seen in this range.")
        st.dataframe(
            ui.neutralise_frame(
                ui.local(
                    table[["key", "name", "watchlist", "total", "negative", "negative_share", "last_seen"]], "last_seen"
                )
            ),
            hide_index=True,
            width="stretch",
            height=280,
            column_config={
                "key": "symbol",
                "total": st.column_config.NumberColumn("documents"),
                "negative_share": st.column_config.NumberColumn("negative share", format="percent"),
            },
        )
        symbols = table["key"].tolist()
        c1, c2 = st.columns([3, 1])
        picked = c1.selectbox("Company", symbols, index=0, key="co_symbol", format_func=ui.safe_text)
        resolution = c2.selectbox("Resolution", list(q.RESOLUTIONS), index=2, key="co_resolution")
        if picked:
            step = q.effective_step(start, end, q.RESOLUTIONS[resolution])
            df = ui.cached(q.series, "entity", start, end, step, (picked,), ui.offset_seconds(end))
            al = ui.cached(q.alert_list, start, end, kinds=("entity",))
            al = al[al["key"] == picked] if not al.empty else al
            if df.empty:
                st.info("No documents about this company in the selected range.")
            else:
                df = ui.local(ui.neutralise_frame(df, ("key",)), "bucket")
                marks = charts.alert_rules(al, start, end)
                left, right = st.columns(2)
                left.altair_chart(charts.with_alerts(charts.volume(df, "key", "Company"), marks), width="stretch")
                right.altair_chart(charts.with_alerts(charts.share(df, "key", "Company"), marks), width="stretch")
            if not al.empty:
                st.caption(f"{len(al)} alert(s) for this company in the range; open them on the Alerts page.")
            st.subheader("Documents")
            sentiments = st.multiselect("Sentiment", ["negative", "neutral", "positive"], key="co_sentiment")
            docs = ui.cached(
                q.search_documents,
                q.DocFilter(start=start, end=end, entities=(picked,), sentiments=tuple(sentiments), limit=500),
            )
            if docs.empty:
                st.info("No documents match.")
            else:
                st.caption(f"{len(docs)} newest documents (at most 500); the Explorer searches and exports more.")
                st.dataframe(
                    ui.local(ui.neutralise_frame(docs), "published_at"),
                    hide_index=True,
                    width="stretch",
                    column_config={"url": st.column_config.LinkColumn("link")},
                )
