"""The Chinese words of the generated demo feed (`finsent demo --lang zh`, `finsent feed --lang zh`).

Written for this project, like the English templates in `pipelines.feed`: news headlines,
announcements and 股吧/雪球/微博-style comments about a watchlist of A-share companies.
The companies are named by their exchange short names (facts from the A-share list the
universe is built from), so the entity linker finds them in the text itself: a Chinese
message carries no ticker list. Negative texts carry only negative cue words, positive
only positive ones, neutral none, so the keyword test double (`monitor.classify.base`)
labels them as the model should.
"""

from __future__ import annotations

import random

# (symbol, short name, relative volume): busy large caps, a middle, a sparse tail.
COMPANIES_ZH: tuple[tuple[str, str, float], ...] = (
    ("600519.SH", "贵州茅台", 9.0),
    ("300750.SZ", "宁德时代", 8.0),
    ("002594.SZ", "比亚迪", 8.0),
    ("601318.SH", "中国平安", 5.0),
    ("600036.SH", "招商银行", 4.0),
    ("000858.SZ", "五粮液", 3.0),
    ("000333.SZ", "美的集团", 3.0),
    ("601012.SH", "隆基绿能", 2.5),
    ("600030.SH", "中信证券", 2.0),
    ("000651.SZ", "格力电器", 2.0),
    ("601398.SH", "工商银行", 1.5),
    ("000002.SZ", "万科A", 1.5),
    ("600276.SH", "恒瑞医药", 1.0),
    ("002415.SZ", "海康威视", 1.0),
    ("600900.SH", "长江电力", 0.6),
    ("601888.SH", "中国中免", 0.5),
)

NEWS_SOURCES_ZH = ("财经快讯", "证券速递", "市场观察", "资本日报", "公司公告")
COMMENT_SOURCES_ZH = ("股吧", "雪球", "微博")

NEG_NEWS_ZH = (
    "{name}{quarter}净利润同比下降{pct}%，业绩不及预期",
    "{name}收到监管警示函，涉嫌{issue}",
    "{name}被立案调查，股价盘中跌停",
    "{name}公告：{neg_event}，预计亏损{n}万元",
    "{name}遭{firm}下调评级，理由是{neg_reason}",
    "{name}大股东拟减持不超过{small}%股份",
    "{name}{neg_event}，股价大跌{pct}%",
    "{name}暴雷：{neg_event}，投资者损失惨重",
)
NEG_COMMENT_ZH = (
    "{name}又跌停了，{neg_reason}，割肉离场",
    "{name}这是暴雷了吧，{neg_event}，套牢{n}股",
    "{name}利空出尽了吗？我看还要跌，{neg_reason}",
    "清仓{name}，{issue}的事太吓人了，亏麻了",
    "{name}今天大跌{pct}%，韭菜又被收割",
)
POS_NEWS_ZH = (
    "{name}{quarter}净利润同比增长{pct}%，业绩超预期",
    "{name}获{firm}上调评级，看好{pos_reason}",
    "{name}公告：{pos_event}，股价涨停",
    "{name}股价创新高，{pos_reason}",
    "{name}控股股东拟增持{n}万元，彰显信心",
)
POS_COMMENT_ZH = (
    "{name}涨停了，{pos_reason}，拿住别动",
    "利好！{name}{pos_event}，明天继续大涨",
    "{name}加仓了，{pos_reason}，稳稳的幸福",
)
NEU_NEWS_ZH = (
    "{name}将于{day}召开{venue}",
    "{name}发布{quarter}报告披露时间安排",
    "{name}聘任{role}",
    "{name}股东大会审议通过{form}",
    "{name}回复投资者关于{venue}的提问",
    "{name}今日成交{vol}亿元，股价变动不大",
)
NEU_COMMENT_ZH = (
    "{name}明天怎么走？大家怎么看",
    "{name}横盘好几天了，等{venue}再说",
    "有人关注{name}吗？{day}有{venue}",
    "{name}成交量正常，观望中",
)

SLOTS_ZH: dict[str, tuple[str, ...]] = {
    "neg_event": (
        "年报被出具保留意见", "财务总监突然辞职", "新品发布失败", "信用评级遭下调", "前期会计差错更正",
        "工厂发生火灾", "重大合同终止", "商誉减值", "经销商大面积亏损", "募投项目延期",
    ),
    "neg_reason": (
        "需求放缓", "毛利率下滑", "成本上升", "订单减少", "库存积压", "现金流紧张",
        "渠道压货", "价格战加剧", "海外收入下滑", "坏账增加",
    ),
    "issue": (
        "信息披露违规", "财务造假", "内幕交易", "虚增收入", "关联交易违规", "产品质量问题",
        "违规担保", "操纵股价",
    ),
    "pos_event": (
        "签下大额订单", "新产品获批上市", "回购计划落地", "入选指数成分股", "分红方案超预期",
        "海外市场取得突破", "新工厂投产",
    ),
    "pos_reason": (
        "需求旺盛", "毛利率提升", "订单饱满", "新品放量", "海外增长强劲", "原材料降价", "市场份额提升",
    ),
    "quarter": ("一季度", "半年度", "三季度", "年度"),
    "firm": ("华信研究", "东岭证券", "北辰资本", "明川投研", "远航证券", "清源资产"),
    "day": ("周一", "周二", "周三", "周四", "周五", "下周", "月底"),
    "venue": ("业绩说明会", "投资者交流会", "临时股东大会", "新品发布会", "年度股东大会"),
    "role": ("新任总经理", "财务总监", "董事会秘书", "独立董事"),
    "form": ("年度利润分配方案", "董事会换届议案", "年度报告", "募集资金使用议案"),
    "city": ("上海", "深圳", "北京", "杭州", "成都", "广州"),
}  # fmt: skip

NEWS_TAILS_ZH = (
    "{firm}分析师在研报中表示",
    "据{city}记者{day}报道",
    "当日成交额{vol}亿元",
    "公司在{city}发布公告",
    "知情人士向{firm}透露",
    "截至收盘报{price}元",
    "{firm}数据显示换手率{small}%",
)
COMMENT_TAILS_ZH = (
    "个人观点，不构成建议",
    "持仓{n}股",
    "目标价{price}元",
    "#{name}#",
    "坐标{city}",
    "成本{price}",
    "第{small}天看盘",
    "{firm}今天出了研报",
    "兄弟们怎么看",
    "哈哈",
    "仓位{small}成",
)
OPENERS_ZH = ("", "", "刚看到，", "说实话，", "卧槽，", "家人们，", "快讯：", "注意：", "唉，", "嗯，")

# A repost of a post: "转发" chains, a link and an emoji added, the way Weibo and 股吧 copy.
REPOST_FORMS_ZH = ("//@{user}: {headline} {link}", "{headline} 🚀 {link}", "转发：{headline}", "{headline} 😂")


def fill_zh(template: str, rng: random.Random, name: str) -> str:
    values = {k: rng.choice(v) for k, v in SLOTS_ZH.items()}
    values.update(
        name=name,
        pct=f"{rng.uniform(1.5, 14.0):.1f}",
        n=f"{rng.randint(12, 9000)}",
        small=f"{rng.randint(1, 9)}",
        vol=f"{rng.uniform(0.5, 90.0):.1f}",
        price=f"{rng.uniform(3.0, 1900.0):.2f}",
    )
    return template.format(**values)


def text_zh(rng: random.Random, sentiment: str, kind: str, name: str) -> str:
    pool = {
        ("negative", "news"): NEG_NEWS_ZH,
        ("negative", "comment"): NEG_COMMENT_ZH,
        ("positive", "news"): POS_NEWS_ZH,
        ("positive", "comment"): POS_COMMENT_ZH,
        ("neutral", "news"): NEU_NEWS_ZH,
        ("neutral", "comment"): NEU_COMMENT_ZH,
    }[(sentiment, kind)]
    text = fill_zh(rng.choice(pool), rng, name)
    if kind == "news":
        return text + "，" + fill_zh(rng.choice(NEWS_TAILS_ZH), rng, name)
    tails = "，".join(fill_zh(t, rng, name) for t in rng.sample(COMMENT_TAILS_ZH, 2))
    return rng.choice(OPENERS_ZH) + text + "，" + tails  # every opener carries its own punctuation
