"""Readable numbers for tables and captions: percentages with one decimal, counts as
integers, ratios as "3.2x" and a zero baseline said in words ("from 0 of 40").

Table columns that stay numeric (so a click on the header sorts them by value) use the
printf formats below in `st.column_config.NumberColumn`; their values are shares times 100.
Nothing here imports streamlit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

SHARE_FORMAT = "%.1f %%"  # a share column holding percentage points (share * 100)
COUNT_FORMAT = "%d"
NORM_FORMAT = "%.1f"


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(share: Any, digits: int = 1) -> str:
    """0.125 -> "12.5 %"; a missing share -> "-"."""
    if _missing(share):
        return "-"
    return f"{float(share) * 100:.{digits}f} %"


def count(n: Any) -> str:
    return "-" if _missing(n) else f"{int(n):,}"


def ratio(x: float) -> str:
    """3.24 -> "3.2x"; large ratios lose their decimal ("42x")."""
    return f"{x:.0f}x" if x >= 100 else f"{x:.1f}x"


def lift(share: Any, baseline_negative: int, baseline_total: int) -> str:
    """The negative share's lift over the baseline: "3.2x"; "from 0 of 40" when the baseline
    had no negative item (a lift over zero is no number); "no baseline" without one."""
    if baseline_total <= 0:
        return "no baseline"
    if baseline_negative <= 0:
        return f"from 0 of {baseline_total:,}"
    if _missing(share):
        return "-"
    return ratio(float(share) / (baseline_negative / baseline_total))


def volume(total: int, norm: Any) -> str:
    """Items in range against the norm for a range that long: "3.2x"; "new" when the company
    had no items in the baseline; "-" when there is no baseline span at all."""
    if _missing(norm):
        return "-"
    if norm <= 0:
        return "new" if total > 0 else "-"
    return ratio(total / float(norm))


RANKING_COLUMNS = (
    "key",
    "name",
    "alert",
    "total",
    "negative",
    "negative_share",
    "baseline_share",
    "lift",
    "norm",
    "volume",
    "last_seen",
)


def ranking_table(rank: pd.DataFrame, name: Callable[[str], str]) -> pd.DataFrame:
    """`queries.company_ranking`'s rows as the Companies table shows them: the display
    name beside the symbol, shares in percentage points (for `SHARE_FORMAT`), lift and
    volume as words ("3.2x", "from 0 of 40", "new"), counts as integers."""
    view = rank.copy()
    view["name"] = view["key"].map(name)
    view["alert"] = view["firing"].map(lambda n: "firing" if n else "")
    view["lift"] = [
        lift(sh, bn, bt)
        for sh, bn, bt in zip(view["negative_share"], view["baseline_negative"], view["baseline_total"], strict=True)
    ]
    view["volume"] = [volume(t, n) for t, n in zip(view["total"], view["norm"], strict=True)]
    view["negative_share"] = view["negative_share"] * 100
    view["baseline_share"] = view["baseline_share"] * 100
    for c in ("total", "negative"):
        view[c] = view[c].astype("int64")
    return view[list(RANKING_COLUMNS)].reset_index(drop=True)


def as_points(df: pd.DataFrame, *cols: str) -> pd.DataFrame:
    """A copy with the share columns `cols` in percentage points, for `SHARE_FORMAT`
    (Streamlit's "percent" preset prints every digit a float has: "0.000000%")."""
    out = df.copy()
    for c in cols:
        if c in out.columns:
            out[c] = pd.to_numeric(out[c], errors="coerce") * 100
    return out
