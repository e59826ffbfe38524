"""Explorer: search and filter documents by time, topic, sentiment, company, source and
text; export what is shown as CSV."""

from __future__ import annotations

import streamlit as st

from dashboards import queries as q
from dashboards import ui
from models.labels import SENTIMENTS, TOPICS

st.title("Explorer")
if ui.db_ready():
    start, end = ui.time_range()
    ui.range_caption(start, end)
    with st.form("ex_filters"):
        text = st.text_input(
            "Text contains",
            key="ex_text",
            max_chars=200,
            help="Case-insensitive substring of the text or title; % and _ match themselves.",
        )
        c1, c2, c3 = st.columns(3)
        topics = c1.multiselect("Topic", list(TOPICS), key="ex_topics")
        sentiments = c2.multiselect("Sentiment", list(SENTIMENTS), key="ex_sentiments")
        entities_txt = c3.text_input("Companies (symbols, comma separated)", key="ex_entities", max_chars=300)
        c4, c5, c6 = st.columns(3)
        sources = c4.multiselect("Source", ui.cached(q.distinct_sources, start, end), key="ex_sources")
        limit = c5.number_input("Max rows", min_value=10, max_value=50_000, value=1000, step=500, key="ex_limit")
        dups = c6.checkbox("Include near-duplicates", value=True, key="ex_dups")
        st.form_submit_button("Search", key="ex_go")
    entities = tuple(
        sorted({e.strip().upper() for e in (entities_txt or "").replace(";", ",").split(",") if e.strip()})
    )
    f = q.DocFilter(
        start=start,
        end=end,
        topics=tuple(topics),
        sentiments=tuple(sentiments),
        entities=entities,
        sources=tuple(sources),
        text=text or "",
        include_duplicates=bool(dups),
        limit=int(limit),
    )
    docs = ui.cached(q.search_documents, f)
    if docs.empty:
        st.info("No documents match these filters in this time range.")
    else:
        more = " (the limit; narrow the filters or raise it to see more)" if len(docs) >= f.limit else ""
        st.caption(f"{len(docs):,} documents, newest first{more}.")
        shown = ui.local(ui.neutralise_frame(docs), "published_at")
        st.dataframe(
            shown,
            hide_index=True,
            width="stretch",
            height=520,
            column_config={
                "url": st.column_config.LinkColumn("link"),
                "sentiment_score": st.column_config.NumberColumn("score", format="%.3f"),
            },
        )
        st.download_button(
            "Download CSV",
            data=ui.csv_bytes(shown),
            file_name="finsent-documents.csv",
            mime="text/csv",
            key="ex_csv",
            on_click="ignore",
        )
