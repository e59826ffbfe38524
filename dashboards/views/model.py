"""Model: version, evaluation metrics and confusion matrix (from the model folder's
finsent.json / MODEL_CARD.md and any `{task}_report.json` evaluation report), and the live
label distribution against training: a drift hint."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboards import fmt, ui
from dashboards import queries as q
from models.labels import SENTIMENTS, TOPICS

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "finsent-minilm"
MULTILINGUAL = ROOT / "models" / "finsent-multilingual"
TASK_FILES = {"topic": "topic_report.json", "sentiment": "sentiment_report.json"}


def model_dir(setting: str) -> Path:
    """The English (or only) model folder of a `model` setting; "auto" is the shipped pair."""
    if setting and setting not in ("test-double", "auto"):
        return Path(setting).expanduser()
    return SHIPPED


def _weights_version(path: Path) -> str | None:
    """The engine's model version: the first 12 hex of the weights' sha256 (as
    `models.multitask.weights_version`, without importing torch)."""
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@st.cache_data(ttl=300, show_spinner=False)
def load_artifact(folder: str) -> dict[str, Any]:
    """Everything the page shows about a model folder, read once per 5 minutes."""
    p = Path(folder)
    meta = _json(p / "finsent.json") or {}
    reports: dict[str, dict[str, Any]] = {}
    for d in (p, p / "eval", ROOT / "artifacts" / "eval"):
        for task, name in TASK_FILES.items():
            if task not in reports and (d / name).is_file():
                r = _json(d / name)
                if r:
                    r["_path"] = str(d / name)
                    reports[task] = r
    card = None
    if (p / "MODEL_CARD.md").is_file():
        try:
            card = (p / "MODEL_CARD.md").read_text(encoding="utf-8")
        except OSError:
            card = None
    tr = meta.get("training") or {}
    version = tr.get("model_version") or meta.get("model_version") or _weights_version(p / "model.safetensors")
    dist = meta.get("label_distribution") or tr.get("label_distribution") or tr.get("train_label_distribution")
    return {
        "exists": p.is_dir(),
        "version": version,
        "meta": meta,
        "reports": reports,
        "card": card,
        "train_dist": dist if isinstance(dist, dict) else None,
    }


def confusion(matrix: list[list[int]], names: list[str], task: str) -> alt.Chart:
    rows = []
    for i, row in enumerate(matrix):
        tot = sum(row) or 1
        for j, v in enumerate(row):
            rows.append({"true": names[i], "predicted": names[j], "count": int(v), "row share": v / tot})
    df = pd.DataFrame(rows)
    size = 18 * len(names) + 60
    base = alt.Chart(df).encode(x=alt.X("predicted:N", sort=names), y=alt.Y("true:N", sort=names))
    heat = base.mark_rect().encode(
        color=alt.Color("row share:Q", scale=alt.Scale(scheme="blues", domain=[0, 1])),
        tooltip=["true", "predicted", "count", alt.Tooltip("row share:Q", format=".1%")],
    )
    text = base.mark_text(fontSize=10 if len(names) > 5 else 13).encode(
        text="count:Q", color=alt.condition("datum['row share'] > 0.5", alt.value("white"), alt.value("black"))
    )
    return (heat + text).properties(title=f"{task}: confusion matrix", width=max(size, 220), height=max(size, 220))


def compare(live: dict[str, int], ref: dict[str, float], labels: list[str], ref_name: str) -> pd.DataFrame:
    lt = sum(live.values()) or 1
    rt = sum(float(ref.get(k, 0) or 0) for k in labels) or 1
    df = pd.DataFrame(
        {
            "label": labels,
            "live": [live.get(k, 0) / lt for k in labels],
            ref_name: [float(ref.get(k, 0) or 0) / rt for k in labels],
        }
    )
    df["difference"] = df["live"] - df[ref_name]
    return df


st.title("Model")
s = ui.settings()
folder = model_dir(s.model)
art = load_artifact(str(folder))
if s.model == "test-double":
    st.warning(
        "This deployment labels documents with the keyword test double (FINSENT_MODEL=test-double), not a "
        "trained model. The shipped model's card is shown below for reference."
    )
if not art["exists"]:
    st.info(f"No model folder at {ui.safe_text(folder)}. Set FINSENT_MODEL to a trained artifact.")
else:
    st.metric("Model version", art["version"] or "unknown")
    st.caption(f"Artifact: {ui.safe_text(folder)}")
    reports = art["reports"]
    valid = ((art["meta"].get("training") or {}).get("valid_metrics")) or {}
    rows = []
    for task in ("topic", "sentiment"):
        r = reports.get(task)
        if r:
            rows.append(
                {
                    "task": task,
                    "source": "evaluation report",
                    "n": r.get("n"),
                    "accuracy": r.get("accuracy"),
                    "macro_f1": r.get("macro_f1"),
                    "ece": r.get("ece"),
                }
            )
        elif valid.get(task):
            v = valid[task]
            rows.append(
                {
                    "task": task,
                    "source": "training validation",
                    "n": None,
                    "accuracy": v.get("accuracy"),
                    "macro_f1": v.get("macro_f1"),
                    "ece": None,
                }
            )
    st.subheader("Evaluation")
    if rows:
        st.dataframe(
            pd.DataFrame(rows),
            hide_index=True,
            width="stretch",
            column_config={
                "accuracy": st.column_config.NumberColumn(format="%.4f"),
                "macro_f1": st.column_config.NumberColumn(format="%.4f"),
                "ece": st.column_config.NumberColumn(format="%.4f"),
            },
        )
    else:
        st.info("No evaluation metrics yet: run `finsent evaluate --out-dir <model folder>` to write the reports.")
    cms = [(t, r) for t, r in reports.items() if r.get("confusion_matrix")]
    if cms:
        cols = st.columns(len(cms))
        for col, (task, r) in zip(cols, cms, strict=True):
            names = list(TOPICS) if task == "topic" else list(SENTIMENTS)
            m = r["confusion_matrix"]
            if len(m) == len(names):
                col.altair_chart(confusion(m, names, task))
                col.caption(f"From {ui.safe_text(r.get('_path'))}")
    else:
        st.caption("No confusion matrix: no `topic_report.json` / `sentiment_report.json` next to the model.")
    if art["card"]:
        with st.expander("Model card"):
            st.text(art["card"])
    if (s.model or "auto") == "auto" and (MULTILINGUAL / "finsent.json").is_file():
        # model = "auto": every non-English document is read by the multilingual model.
        ml = load_artifact(str(MULTILINGUAL))
        st.markdown('**Chinese and other languages** (`model = "auto"` sends every non-English document here)')
        ml_valid = (ml["meta"].get("training") or {}).get("valid_metrics") or {}
        ml_cols = st.columns(3)
        ml_cols[0].metric("Multilingual model version", ml["version"] or "unknown")
        for col, task in zip(ml_cols[1:], ("topic", "sentiment"), strict=True):
            zh = ml_valid.get(f"{task}_zh_valid") or {}
            if zh:
                col.metric(f"Chinese {task} macro-F1 (validation)", f"{float(zh.get('macro_f1', 0.0)):.3f}")
        st.caption(f"Artifact: {ui.safe_text(MULTILINGUAL)}")
        if ml["card"]:
            with st.expander("Multilingual model card"):
                st.text(ml["card"])

st.subheader("Live labels against training")
if ui.db_ready():
    start, end = ui.time_range()
    ui.range_caption(start, end)
    live = ui.cached(q.label_distribution, start, end)
    if not sum(live.values()):
        st.info("No documents in this time range to compare.")
    else:
        train = (art.get("train_dist") or {}).get("sentiment") if art["exists"] else None
        if train:
            ref_name, ref = "training", train
            st.caption("Reference: the training set's label distribution, from the model's finsent.json.")
        else:
            lo, _ = ui.cached(q.data_bounds)
            ref = ui.cached(q.label_distribution, lo, lo + timedelta(days=7)) if lo else {}
            ref_name = "first week"
            st.caption(
                "The model folder records no training label distribution, so the reference is the first week of "
                "stored data. A large difference is a hint of drift (or a changed feed), not proof."
            )
        df = compare(live, ref, list(SENTIMENTS), ref_name)
        long = df.melt(id_vars="label", value_vars=["live", ref_name], var_name="set", value_name="share")
        chart = (
            alt.Chart(long)
            .mark_bar()
            .encode(
                x=alt.X("label:N", sort=list(SENTIMENTS), title=None),
                xOffset="set:N",
                y=alt.Y("share:Q", axis=alt.Axis(format="%")),
                color="set:N",
                tooltip=["label", "set", alt.Tooltip("share:Q", format=".1%")],
            )
            .properties(height=240)
        )
        st.altair_chart(chart, width="stretch")
        worst = df.loc[df["difference"].abs().idxmax()]
        if abs(worst["difference"]) >= 0.10:
            st.warning(
                f"Drift hint: {worst['label']} is {worst['live']:.0%} of live documents against "
                f"{worst[ref_name]:.0%} in the {ref_name} reference."
            )
        else:
            st.success("Live sentiment shares are within 10 points of the reference.")
        st.dataframe(
            fmt.as_points(df, "live", ref_name, "difference"),
            hide_index=True,
            width="stretch",
            column_config={
                c: st.column_config.NumberColumn(format=fmt.SHARE_FORMAT) for c in ("live", ref_name, "difference")
            },
        )
        vers = ui.cached(q.model_versions, start, end)
        if not vers.empty:
            st.markdown("**Model versions that labelled these documents**")
            st.dataframe(ui.neutralise_frame(vers), hide_index=True, width="stretch")
            if art.get("version") and art["version"] not in set(vers["model_version"].astype(str)):
                st.caption(
                    f"None of these documents was labelled by the artifact above ({art['version']}); the live "
                    "shares describe the versions listed here."
                )
