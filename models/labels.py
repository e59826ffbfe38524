"""Label maps shared by training, inference, storage and the dashboard.

The order of each tuple is the order of the model's output logits, so it must never be
reordered once an artifact has been trained against it.
"""

from __future__ import annotations

TOPICS: tuple[str, ...] = (
    "Analyst Update",
    "Fed | Central Banks",
    "Company | Product News",
    "Treasuries | Corporate Debt",
    "Dividend",
    "Earnings",
    "Energy | Oil",
    "Financials",
    "Currencies",
    "General News | Opinion",
    "Gold | Metals | Materials",
    "IPO",
    "Legal | Regulation",
    "M&A | Investments",
    "Macro",
    "Markets",
    "Politics",
    "Personnel Change",
    "Stock Commentary",
    "Stock Movement",
)

SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")

# The Twitter Financial News sentiment files use 0 Bearish, 1 Bullish, 2 Neutral.
TFN_SENTIMENT_IDS: dict[int, str] = {0: "negative", 1: "positive", 2: "neutral"}
# Topic ids in those files are the index into TOPICS.
TFN_TOPIC_IDS: dict[int, str] = dict(enumerate(TOPICS))

TOPIC_INDEX = {name: i for i, name in enumerate(TOPICS)}
SENTIMENT_INDEX = {name: i for i, name in enumerate(SENTIMENTS)}
