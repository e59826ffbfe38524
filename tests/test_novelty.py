"""Near-duplicate fingerprints: normalisation, parameters (against datasketch), matching."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from monitor.enrich import novelty as nv
from tests.doubles import first_duplicates, jaccard

BASE = "Tesla shares plunge after recall of 2 million vehicles over brake fault"


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("RT @desk: $TSLA plunges after recall!! https://t.co/x1", "tsla plunges after recall"),
        ("rt @a: RT @b: Hello   World", "hello world"),
        ("Shares FALL 3% www.example.com/x?y=1", "shares fall 3"),
        ("@user1 @user2 great call on $AAPL!!!", "great call on aapl"),
        ("https://t.co/only", ""),
        ("Ｔｅｓｌａ\u00a0recall", "tesla recall"),
    ],
)
def test_normalize(raw: str, want: str) -> None:
    assert nv.normalize(raw) == want


@pytest.mark.parametrize("threshold", [0.5, 0.6, 0.7, 0.8, 0.9])
def test_lsh_params_match_datasketch(threshold: float) -> None:
    assert nv.lsh_params(threshold, 128) == _optimal_param(threshold, 128, 0.5, 0.5)


def test_signature_matches_datasketch_reference() -> None:
    sh = nv.shingles(nv.normalize(BASE))
    ref = MinHash(num_perm=128, seed=1, scheme="affine32")
    for s in sh:
        ref.update(s.encode("utf-8"))
    sig = nv.signature(BASE)
    assert sig is not None
    np.testing.assert_array_equal(sig, ref.hashvalues)


def test_bands_shape_and_width() -> None:
    b, r = nv.lsh_params(0.7)
    keys = nv.bands(BASE, 0.7)
    assert len(keys) == b == len(set(keys))
    assert all(len(k) <= 40 and k.startswith(f"{b}x{r}:") for k in keys)
    assert nv.bands("https://t.co/abc", 0.7) == []


def test_bands_are_stable_across_processes() -> None:
    # Workers share the band table, so a fresh interpreter must compute the same keys.
    code = f"from monitor.enrich.novelty import bands; print(','.join(bands({BASE!r}, 0.7)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out.split(",") == nv.bands(BASE, 0.7)


@pytest.mark.parametrize(
    "copy",
    [
        "RT @trader: " + BASE + " https://t.co/zz9",
        BASE.upper() + "!!!",
        BASE + " via @newsdesk",
        "$TSLA " + BASE,
        BASE + " https://example.com/a?b=c",
    ],
)
def test_reposts_are_duplicates(copy: str) -> None:
    assert jaccard(BASE, copy) > 0.8
    assert set(nv.bands(BASE)) & set(nv.bands(copy))


@pytest.mark.parametrize(
    "other",
    [
        "Tesla shares soar after record quarterly deliveries beat estimates",
        "Apple recalls chargers over overheating risk, shares slip",
        "JPMorgan faces probe over trading desk losses",
        "Tesla faces lawsuit from shareholders over Autopilot claims",
    ],
)
def test_distinct_headlines_are_novel(other: str) -> None:
    assert jaccard(BASE, other) < 0.4
    assert not set(nv.bands(BASE)) & set(nv.bands(other))


def test_collision_rate_follows_s_curve() -> None:
    """Empirical match rate of random sets at known Jaccard vs the analytic S-curve."""
    b, r = nv.lsh_params(0.7)
    for target in (0.5, 0.7, 0.9):
        hits = 0
        trials = 200
        for t in range(trials):
            n = 60
            shared = int(round(2 * n * target / (1 + target)))
            common = [f"c{t}_{i}" for i in range(shared)]
            a = common + [f"a{t}_{i}" for i in range(n - shared)]
            bb = common + [f"b{t}_{i}" for i in range(n - shared)]
            sigs = []
            for items in (a, bb):
                m = MinHash(num_perm=128, seed=1, scheme="affine32")
                m.update_batch([x.encode() for x in items])
                sigs.append(m.hashvalues)
            ka, kb = (set(nv.bands_of_signature(s, 0.7)) for s in sigs)
            hits += bool(ka & kb)
        expected = float(nv.collision_probability(target, b, r))
        se = np.sqrt(expected * (1 - expected) / trials) + 0.02
        assert abs(hits / trials - expected) < 4 * se, (target, hits / trials, expected)


def test_first_duplicates_reference() -> None:
    texts = [BASE, "Apple beats on earnings", "RT @x: " + BASE, "apple beats on earnings!!", "Something else entirely"]
    assert first_duplicates(texts) == [None, None, 0, 1, None]


def test_chinese_reposts_are_copies_and_a_different_chinese_story_is_not() -> None:
    """Character shingles need no word spaces: a 股吧 post reposted with 转发, a Weibo
    //@ chain, an emoji, full-width punctuation or a link is the same post; another story
    about the same company in the same words of the trade is not."""
    post = "茅台经销商暴雷，库存积压严重，今天股价跌停，割肉离场了，兄弟们怎么看"
    copies = [
        post + "😂",
        "转发：" + post,
        "//@股民老王: " + post + " https://t.example/3fa9",
        post.replace("，", ","),
        "【转】" + post + "！！",
    ]
    other = "茅台一季度净利润同比下降12%，业绩不及预期，机构下调评级，股价大跌"
    dups = first_duplicates([post, *copies, other])
    assert dups[1:6] == [0, 0, 0, 0, 0]
    assert dups[6] is None
    assert jaccard(post, copies[2]) > 0.9
