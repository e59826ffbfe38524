"""Chinese end to end: a replayed Chinese feed (A-shares named in the text only) goes
through language routing, the A-share linker, near-duplicate marking, the detector and a
Feishu channel with `locale = "zh"` on a real HTTP receiver.

Runs with the keyword test double (always) and with `model = "auto"` (the shipped English
and multilingual models) when the multilingual model is installed.
"""

# ruff: noqa: F811  (fixtures imported from tests/_alerts_fixtures.py are re-bound as arguments)
from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from models.multitask import MULTILINGUAL_MODEL_DIR, WEIGHTS_FILE, weights_version
from monitor.classify.base import KeywordTestDouble
from pipelines.feed import Decoy, Surge, generate, write
from tests._alerts_fixtures import make_settings, receiver  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

T0 = datetime(2024, 5, 6, tzinfo=UTC)  # a Monday
HAS_MULTILINGUAL = (MULTILINGUAL_MODEL_DIR / WEIGHTS_FILE).is_file()


def _classifier(kind: str) -> Any:
    if kind == "test-double":
        return KeywordTestDouble()
    from monitor.classify.engine import build_classifier

    return build_classifier("auto")


@pytest.mark.parametrize(
    "kind",
    [
        "test-double",
        pytest.param(
            "auto", marks=pytest.mark.skipif(not HAS_MULTILINGUAL, reason="models/finsent-multilingual not installed")
        ),
    ],
)
def test_chinese_replay_alerts_for_moutai_in_chinese_on_feishu(tmp_path: Path, receiver: Any, kind: str) -> None:
    from monitor.app.wiring import build
    from monitor.store.schema import documents
    from pipelines.replay import replay

    surge = Surge("600519.SH", T0 + timedelta(hours=15), 30, 3.0)
    decoy = Decoy("002594.SZ", T0 + timedelta(hours=14), 20, 10.0)  # a storm of reposts of one neutral post
    msgs = list(generate(11, T0 + timedelta(hours=9), 8 * 60, 5.0, surges=[surge], decoys=[decoy], lang="zh"))
    path = tmp_path / "zh.csv"
    write(path, msgs)
    base = make_settings(receiver.base, channels=("feishu",))
    feishu = base.channels[0].model_copy(update={"locale": "zh", "rate_per_minute": 0})  # no pacing in a test
    settings = base.model_copy(
        update={"database_url": f"sqlite:///{tmp_path / 'zh.db'}", "channels": (feishu,), "model": kind}
    )
    clf = _classifier(kind)
    res = replay(path, settings, classifier=clf, notify=True)

    fired = {v: datetime.fromisoformat(s) for k, v, s in res.fired if k == "entity"}
    assert "600519.SH" in fired, res.fired
    assert surge.start < fired["600519.SH"] <= surge.start + timedelta(minutes=surge.minutes)  # while it lasts
    assert "002594.SZ" not in fired  # reposts of a neutral post are not news

    parts = build(settings)
    try:
        parts.sender.send_due(datetime.now(UTC))
        with parts.engine.connect() as c:
            langs = dict(c.execute(select(documents.c.lang, func.count()).group_by(documents.c.lang)).all())
            storm = c.execute(
                select(func.count(), func.count(documents.c.duplicate_of)).where(
                    documents.c.id.in_([m["id"] for m in msgs if m["planted"] == "decoy:0"])
                )
            ).one()
            versions = {r[0] for r in c.execute(select(documents.c.model_version).distinct())}
    finally:
        parts.engine.dispose()
    assert langs == {"zh": len(msgs)}
    assert storm[0] > 100 and storm[0] - storm[1] <= 2  # near-copies of one post count once
    if kind == "auto":  # every Chinese document was read by the multilingual model
        assert versions == {weights_version(MULTILINGUAL_MODEL_DIR / WEIGHTS_FILE)}

    cards = [r.json()["card"] for r in receiver.on("/feishu/")]
    titles = [c["header"]["title"]["content"] for c in cards]
    assert "【告警】贵州茅台（600519.SH）负面舆情激增" in titles, titles
    text = json.dumps(cards, ensure_ascii=False)
    assert "负面占比" in text and "条原创" in text and "FIRING" not in text
