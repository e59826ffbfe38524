"""Companies: every company ranked over the range (negative share against its own baseline,
volume against its norm, firing alerts), a search by name or symbol, and one company's
trend and documents, all on the sentiment toward the company."""

from __future__ import annotations

from datetime import timedelta

import streamlit as st

from dashboards import charts, fmt, ui
from dashboards import queries as q

BASELINES = {"7 days before": 7, "30 days before": 30, "90 days before": 90}
SHOWN = 1000  # rows in the ranking table; the search reaches every company

st.title("Companies")
if ui.db_ready():
    s = ui.settings()
    start, end = ui.time_range()
    ui.range_caption(start, end)
    names = ui.directory()
    c1, c2, c3 = st.columns([3, 2, 1])
    find = c1.text_input("Find a company", key="co_find", placeholder="name or symbol: tesla, TSLA, JPMorgan")
    order = c2.selectbox("Sort by", q.RANK_ORDERS, index=0, key="co_sort")
    base_label = c3.selectbox("Baseline", list(BASELINES), index=1, key="co_baseline")
    rank = ui.cached(q.company_ranking, start, end, timedelta(days=BASELINES[base_label]))
    rank = q.sort_ranking(rank, order)
    watch = {e.symbol for e in s.entities}
    in_range = set(rank.loc[rank["total"] > 0, "key"])

    table = rank[(rank["total"] > 0) | (rank["firing"] > 0)]
    hits: list[str] = []
    if find.strip():
        hits = names.search(find, present=set(rank["key"]), limit=200)
        table = table[table["key"].isin(hits)]
    only_watch = st.toggle("Watchlist only", value=False, disabled=not watch, key="co_watch_only")
    if only_watch:
        table = table[table["key"].isin(watch)]

    if find.strip() and not hits:
        st.info(f"No company matches {ui.safe_text(find.strip())!r} by symbol or name.")
    elif table.empty and not hits:
        st.info(
            "No companies in this range: no document in it named one. Pick a longer range in the sidebar, "
            "or search for a company by name."
        )
    if not table.empty:
        firing = int((table["firing"] > 0).sum())
        st.caption(
            f"{len(table):,} {'company' if len(table) == 1 else 'companies'} with items in this range"
            + (f", {firing} with a firing alert" if firing else "")
            + f". Baseline: the {base_label.removesuffix(' before')} before the range; the norm is its items "
            f"scaled to the range's length. Lift ranks need {q.MIN_RANK_ITEMS} items in range."
        )
        view = fmt.ranking_table(table.head(SHOWN), names.name)
        st.dataframe(
            ui.neutralise_frame(
                ui.local(view, "last_seen"),
                ("key", "name"),
            ),
            hide_index=True,
            width="stretch",
            height=320,
            column_config={
                "key": "symbol",
                "total": st.column_config.NumberColumn("items", format=fmt.COUNT_FORMAT),
                "negative": st.column_config.NumberColumn("negative", format=fmt.COUNT_FORMAT),
                "negative_share": st.column_config.NumberColumn("negative share", format=fmt.SHARE_FORMAT),
                "baseline_share": st.column_config.NumberColumn("baseline share", format=fmt.SHARE_FORMAT),
                "lift": st.column_config.TextColumn("lift", help="negative share against the baseline's"),
                "norm": st.column_config.NumberColumn("norm", format=fmt.NORM_FORMAT, help="items expected"),
                "volume": st.column_config.TextColumn("volume", help="items against the norm"),
                "last_seen": "last seen",
            },
        )
        if len(table) > SHOWN:
            st.caption(f"The first {SHOWN:,} of {len(table):,} in this order; search to reach the others.")

    options = hits if find.strip() else table["key"].head(SHOWN).tolist()
    if only_watch:
        options = [o for o in options if o in watch] or sorted(watch)

    def _label(sym: str) -> str:
        name = names.name(sym)
        label = sym if name == sym else f"{sym} · {name}"
        return ui.safe_text(label if sym in in_range else f"{label} (no items in range)")

    if options:
        c1, c2 = st.columns([3, 1])
        picked = c1.selectbox("Company", options, index=0, key="co_symbol", format_func=_label)
        resolution = c2.selectbox("Resolution", list(q.RESOLUTIONS), index=2, key="co_resolution")
        row = rank[rank["key"] == picked]
        r = row.iloc[0] if not row.empty else None
        total = int(r["total"]) if r is not None else 0
        m1, m2, m3, m4, m5 = st.columns(5)
        m1.metric("Items", fmt.count(total))
        m2.metric("Negative share", fmt.pct(r["negative_share"]) if r is not None else "-")
        m3.metric("Baseline share", fmt.pct(r["baseline_share"]) if r is not None else "-")
        m4.metric(
            "Lift", fmt.lift(r["negative_share"], r["baseline_negative"], r["baseline_total"]) if r is not None else "-"
        )
        m5.metric("Volume vs norm", fmt.volume(total, r["norm"]) if r is not None else "-")
        if not total:
            st.info(f"{_label(picked)}: no items in range. Pick a longer range in the sidebar.")
        step = q.effective_step(start, end, q.RESOLUTIONS[resolution])
        df = ui.cached(q.series, "entity", start, end, step, (picked,), ui.offset_seconds(end))
        al = ui.cached(q.alert_list, start, end, kinds=("entity",))
        al = al[al["key"] == picked] if not al.empty else al
        if not df.empty:
            df = ui.local(ui.neutralise_frame(df, ("key",)), "bucket")
            marks = charts.alert_rules(al, start, end)
            left, right = st.columns(2)
            left.altair_chart(charts.with_alerts(charts.volume(df, "key", "Company"), marks), width="stretch")
            right.altair_chart(charts.with_alerts(charts.share(df, "key", "Company"), marks), width="stretch")
            st.caption("Counts and shares use the sentiment toward this company, not the whole document's.")
        if not al.empty:
            st.caption(f"{len(al)} alert(s) for this company in the range; open them on the Alerts page.")
        st.subheader("Documents")
        sentiments = st.multiselect(
            "Sentiment toward the company", ["negative", "neutral", "positive"], key="co_sentiment"
        )
        docs = ui.cached(q.company_documents, picked, start, end, tuple(sentiments), 500)
        if docs.empty:
            st.info("No documents match.")
        else:
            st.caption(f"{len(docs)} newest documents (at most 500); the Explorer searches and exports more.")
            st.dataframe(
                ui.local(ui.neutralise_frame(docs), "published_at"),
                hide_index=True,
                width="stretch",
                column_config={
                    "company_sentiment": "toward company",
                    "company_score": st.column_config.NumberColumn("company score", format="%.2f"),
                    "sentiment": "document",
                    "sentiment_score": st.column_config.NumberColumn("document score", format="%.2f"),
                    "url": st.column_config.LinkColumn("link"),
                },
            )
