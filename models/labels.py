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

# Chinese names of the topics, for messages and views in Chinese (channel `locale = "zh"`).
TOPIC_NAMES_ZH: dict[str, str] = {
    "Analyst Update": "分析师观点",
    "Fed | Central Banks": "央行与货币政策",
    "Company | Product News": "公司与产品",
    "Treasuries | Corporate Debt": "国债与公司债",
    "Dividend": "分红派息",
    "Earnings": "业绩",
    "Energy | Oil": "能源与原油",
    "Financials": "金融业",
    "Currencies": "汇率与货币",
    "General News | Opinion": "综合新闻与评论",
    "Gold | Metals | Materials": "黄金、金属与原材料",
    "IPO": "新股上市",
    "Legal | Regulation": "法律与监管",
    "M&A | Investments": "并购与投资",
    "Macro": "宏观经济",
    "Markets": "市场行情",
    "Politics": "政治",
    "Personnel Change": "人事变动",
    "Stock Commentary": "个股点评",
    "Stock Movement": "个股异动",
}
