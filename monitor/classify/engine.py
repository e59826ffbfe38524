"""The inference engine: texts in, topic + sentiment predictions out, in input order.

Used by the daemon, replay and ``finsent classify``. Build one with
``build_classifier(setting, **engine_kwargs)`` (``"test-double"``, empty/None for the shipped
model, or an artifact folder) or ``Engine(model_dir=None, device="auto", max_length=None,
batch_size=256, threads=None, quantize=None, max_tokens=None, precision="auto")``.
``finsent classify`` calls ``classify_file(path, text_column="text", output=None, model=None,
batch_size=256, device="auto") -> int`` (rows written as JSON lines).

Why it is fast: a poll batch is sorted by token length and cut into buckets that are padded
only to their own longest text (tweets are ~30 tokens, so almost no compute is spent on
padding); the tokenizer is the Rust one called once per batch; forward passes run under
``torch.inference_mode``, in bf16 on CUDA; ``classify_iter`` tokenises the next batch on a
background thread while the current one runs through the encoder. On CPU, dynamic int8
quantisation of the linear layers is used when it is enabled (``quantize``), see
``pipelines/bench_classify.py`` for the measurement that decides the default.

Documents (``analyse``): a text longer than the model window is read whole, in chunks: its
sentences are packed into windows of at most ``max_length`` tokens (a sentence longer than a
window is split), every chunk of every document of the batch goes through the same
length-bucketed pass, and the document's topic and sentiment are the token-weighted mean of
its chunks' probabilities, with the title (its own chunk) weighing as much as the whole
body. The sentiment toward a linked company comes from the chunks that mention it, through
the model's entity head: with a target-marked entity branch (``HeadSpec.entity_layers``),
the chunk's token vectors from below the last encoder layers go once per company through
copies of those layers with the company's mention tokens marked, so "Tesla" and "GM" in
one sentence are read separately (chunks without a linked company skip it);
older artifacts read the mention's own token vectors next to the chunk's; a model without
an entity head falls back to those chunks' sentiment. Routine mentions carry no opinion:
where some of those chunks are clearly positive or negative toward the company, they
decide, so one paragraph of bad news about a company in a long article is not outvoted by
the paragraphs that merely name it. A document longer than ``max_chunks``
windows is read up to there: ``Prediction.cut`` says so and ``truncated`` counts it.

Robustness: ``None``/non-strings are coerced to text, empty strings are classified (as the
model sees ``[CLS] [SEP]``), huge strings are cut (with a reason) before tokenisation.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from monitor.classify.base import (
    Classifier,
    DocInput,
    EntitySentiment,
    KeywordTestDouble,
    Prediction,
    Span,
    Target,
    analyse,
    stand_in,
)

log = logging.getLogger(__name__)

# Characters kept per text before tokenising, per token of the model window: far more than
# any real tokenisation needs (a word piece is >= 1 char), so the cut never changes the
# result for a text that fits, while a 10 MB string costs no more than a long article.
_CHARS_PER_TOKEN_CAP = 16


@dataclass
class _Chunk:
    """One model window of a document: its token ids (with [CLS]/[SEP]), whether it is the
    title, its body weight, and per target of the document the token positions of its
    mentions inside this window."""

    doc: int
    ids: list[int]
    title: bool = False
    weight: float = 1.0
    targets: dict[int, list[int]] = field(default_factory=dict)


@dataclass
class _Prepared:
    """A tokenised batch: its documents' chunks, bucketed as (chunk positions, input_ids,
    attention_mask)."""

    docs: list[DocInput]
    chunks: list[_Chunk]
    buckets: list[tuple[list[int], torch.Tensor, torch.Tensor]]
    cuts: list[str]
    truncated: int

    @property
    def size(self) -> int:
        return len(self.docs)


# Where a sentence ends: after . ! ? ; (and their CJK forms) or a line break.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?;。！？；])\s+|(?<=[。！？；])|\n+")


# Floating-point engine precisions and their torch dtypes (int8 is dynamic quantisation).
PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def cpu_has_bf16() -> bool:
    """True where oneDNN runs bf16 matmuls natively (AMX / AVX512-BF16)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name not in {"cpu", "cuda", "mps"} and not name.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu, cuda or mps, not {name!r}")
    return torch.device(name)


class Engine:
    """Batched, length-bucketed inference with the multi-task model (a ``Classifier``)."""

    def __init__(
        self,
        model_dir: str | Path | None = None,
        device: str = "auto",
        max_length: int | None = None,
        batch_size: int = 256,
        threads: int | None = None,
        quantize: bool | None = None,
        max_tokens: int | None = None,
        precision: str = "auto",
        max_chunks: int = 64,
    ) -> None:
        from models.multitask import load_artifact

        if threads:
            torch.set_num_threads(threads)
        self.device = pick_device(device)
        model, tokenizer, version = load_artifact(model_dir)
        self.model_dir = Path(model_dir) if model_dir else None
        self._version = version
        self.topics = model.spec.topics
        self.sentiments = model.spec.sentiments
        self.max_length = int(min(max_length or model.spec.max_length, model.encoder.config.max_position_embeddings))
        self.batch_size = max(1, int(batch_size))
        #: Windows read per document at most (64 x 256 tokens: about 12,000 words).
        self.max_chunks = max(1, int(max_chunks))
        self.has_entity_head = model.entity_head is not None
        self._marked = model.entity_block is not None  # the target-marked entity layer
        self._neutral = self.sentiments.index("neutral") if "neutral" in self.sentiments else None
        # Padded tokens per forward pass: big enough to keep the cores busy, small enough
        # that one long outlier does not blow up a whole bucket. On a CPU, 512 tokens per
        # thread already fill the matrix units; smaller buckets waste less on padding (a
        # 256-text batch of tweets: 95 % real tokens at 1024 vs 85 % at 4096, 8-15 % faster
        # on 2 AVX2 cores).
        default_tokens = {"cuda": 65536, "cpu": max(1024, 512 * torch.get_num_threads())}
        self.max_tokens = max_tokens or default_tokens.get(self.device.type, 4096)
        if precision not in {"auto", "fp32", "bf16", "fp16", "int8"}:
            raise ValueError(f"precision must be auto, fp32, bf16, fp16 or int8, not {precision!r}")
        if quantize:
            precision = "int8"
        if precision == "auto":
            if self.device.type == "cuda":
                precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
            elif self.device.type == "mps":
                precision = "fp16"
            else:
                precision = "bf16" if cpu_has_bf16() else "fp32"
        if precision == "int8":
            if self.device.type != "cpu":
                raise ValueError("int8 (dynamic quantisation) runs on the CPU only")
            model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        else:
            dtype = PRECISION_DTYPES[precision]
            model = model.to(self.device, dtype)
        # Temperatures stay float32 whatever the weights are (bf16 would round 1.397 to 1.398).
        model.temperature = torch.tensor(
            [model.spec.temperature_topic, model.spec.temperature_sentiment], device=self.device
        )
        self._entity_temperature = float(model.spec.temperature_entity)
        self.precision = precision
        self.quantized = precision == "int8"
        # Rounding padded widths up keeps the set of shapes small, so oneDNN (bf16 on CPU)
        # and cuDNN/cuBLAS reuse their planned kernels instead of re-planning per batch.
        self._pad_multiple = 1 if precision in {"fp32", "int8"} and self.device.type == "cpu" else 8
        self.model = model.eval()
        self._tok = tokenizer.backend_tokenizer
        self._tok.no_padding()
        self._tok.no_truncation()  # long texts are chunked, not cut
        self._pad_id = int(tokenizer.pad_token_id or 0)
        self._cls = int(tokenizer.cls_token_id)
        self._sep = int(tokenizer.sep_token_id)
        self._lock = threading.Lock()
        #: Texts that lost tokens to the model window (or to the character cap) so far.
        self.truncated = 0
        #: Texts classified so far.
        self.classified = 0

    @property
    def model_version(self) -> str:
        return self._version

    # ------------------------------------------------------------ tokenisation

    def _prepare(self, docs: Sequence[DocInput]) -> _Prepared:
        window = self.max_length - 2
        cap = self.max_chunks * self.max_length * _CHARS_PER_TOKEN_CAP
        texts: list[str] = []
        cuts: list[str] = []
        full: list[int] = []
        for d in docs:
            t = _as_text(d.text)
            full.append(len(t))
            cuts.append(
                f"text of {len(t):,} characters cut to {cap:,} before reading (the cap of {self.max_chunks} windows)"
                if len(t) > cap
                else ""
            )
            texts.append(t[:cap])
        titles = [_as_text(d.title)[: self.max_length * _CHARS_PER_TOKEN_CAP] if d.title else "" for d in docs]
        body_enc = self._tok.encode_batch(texts, add_special_tokens=False)
        with_title = [i for i, t in enumerate(titles) if t.strip()]
        title_enc = dict(
            zip(
                with_title,
                self._tok.encode_batch([titles[i] for i in with_title], add_special_tokens=False),
                strict=True,
            )
        )
        chunks: list[_Chunk] = []
        for i, d in enumerate(docs):
            if i in title_enc:
                enc = title_enc[i]
                ids = enc.ids[:window]
                chunks.append(
                    _Chunk(i, [self._cls, *ids, self._sep], True, 1.0, _mentions(d.targets, enc.offsets[:window], True))
                )
            pieces = _pack(texts[i], body_enc[i].offsets, window)
            if len(pieces) > self.max_chunks:
                last = body_enc[i].offsets[pieces[self.max_chunks - 1][1] - 1][1]
                cuts[i] = (
                    f"read the first {last:,} of {full[i]:,} characters ({self.max_chunks} windows of "
                    f"{self.max_length} tokens, the cap)"
                )
                pieces = pieces[: self.max_chunks]
            for a, b in pieces:
                offsets = body_enc[i].offsets[a:b]
                chunks.append(
                    _Chunk(
                        i,
                        [self._cls, *body_enc[i].ids[a:b], self._sep],
                        False,
                        float(max(1, b - a)),
                        _mentions(d.targets, offsets, False),
                    )
                )
        return _Prepared(list(docs), chunks, self._buckets([c.ids for c in chunks]), cuts, sum(1 for c in cuts if c))

    def _buckets(self, seqs: Sequence[Sequence[int]]) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
        lengths = [len(s) for s in seqs]
        order = sorted(range(len(seqs)), key=lengths.__getitem__)
        q = self._pad_multiple
        buckets: list[tuple[list[int], torch.Tensor, torch.Tensor]] = []
        start = 0
        while start < len(order):
            # Sorted ascending, so the last member of a bucket sets its padded width.
            end = start + 1
            while (
                end < len(order)
                and end - start < self.batch_size
                and (end - start + 1) * _round_up(lengths[order[end]], q) <= self.max_tokens
            ):
                end += 1
            if end < len(order) and end - start > q:
                end = start + (end - start) // q * q  # whole blocks of rows; the rest goes on
            idx = order[start:end]
            width = _round_up(lengths[idx[-1]], q)
            rows = _round_up(len(idx), q)  # dummy rows keep the shape set small (bf16/GPU)
            ids = torch.full((rows, width), self._pad_id, dtype=torch.long)
            mask = torch.zeros((rows, width), dtype=torch.long)
            mask[:, 0] = 1  # dummy rows attend to one token, so they stay finite
            for row, i in enumerate(idx):
                seq = seqs[i]
                ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, : len(seq)] = 1
            buckets.append((idx, ids, mask))
            start = end
        return buckets

    # ------------------------------------------------------------ forward

    def _run(self, prepared: _Prepared) -> list[Prediction]:
        n = len(prepared.chunks)
        topic_p = torch.empty((n, len(self.topics)), dtype=torch.float32)
        sent_p = torch.empty((n, len(self.sentiments)), dtype=torch.float32)
        # (chunk, target index) -> entity probabilities
        ent_p: dict[tuple[int, int], torch.Tensor] = {}
        temp = self.model.temperature.float()
        with self._lock, torch.inference_mode():
            for idx, ids, mask in prepared.buckets:
                ids, mask = ids.to(self.device), mask.to(self.device)
                before_last = None
                if self._marked and any(prepared.chunks[c].targets for c in idx):
                    hidden, before_last = self.model.hidden_states(ids, mask)
                else:
                    hidden = self.model.hidden(ids, mask)
                pooled = self.model.pool(hidden, mask)
                t, s = self.model.heads(pooled)
                where = torch.tensor(idx)
                topic_p[where] = torch.softmax(t[: len(idx)].float() / temp[0], -1).cpu()
                sent_p[where] = torch.softmax(s[: len(idx)].float() / temp[1], -1).cpu()
                if self.has_entity_head:
                    self._entities(prepared.chunks, idx, hidden, pooled, ent_p, before_last, mask)
            self.truncated += prepared.truncated
            self.classified += prepared.size
        return self._predictions(prepared, topic_p, sent_p, ent_p)

    def _entities(
        self,
        chunks: Sequence[_Chunk],
        idx: Sequence[int],
        hidden: torch.Tensor,
        pooled: torch.Tensor,
        out: dict[tuple[int, int], torch.Tensor],
        before_last: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> None:
        keys: list[tuple[int, int]] = []
        rows: list[int] = []
        marks: list[list[int]] = []
        for row, c in enumerate(idx):
            for t, positions in chunks[c].targets.items():
                keys.append((c, t))
                rows.append(row)
                marks.append(positions)
        if not keys:
            return
        spans = torch.zeros((len(keys), hidden.shape[1]), dtype=torch.long, device=hidden.device)
        for k, positions in enumerate(marks):
            spans[k, positions] = 1
        where = torch.tensor(rows, device=hidden.device)
        if before_last is not None and mask is not None:
            # One pass of the entity layer per company, its mention marked (target-aware).
            logits = self.model.marked_entity_logits(before_last, mask, where, spans)
        else:
            logits = self.model.entity_logits(hidden, pooled, where, spans)
        probs = torch.softmax(logits.float() / self._entity_temperature, -1).cpu()
        for k, key in enumerate(keys):
            out[key] = probs[k]

    def _predictions(
        self,
        prepared: _Prepared,
        topic_p: torch.Tensor,
        sent_p: torch.Tensor,
        ent_p: dict[tuple[int, int], torch.Tensor],
    ) -> list[Prediction]:
        by_doc: list[list[int]] = [[] for _ in prepared.docs]
        for c, chunk in enumerate(prepared.chunks):
            by_doc[chunk.doc].append(c)
        out: list[Prediction] = []
        for i, d in enumerate(prepared.docs):
            members = by_doc[i]
            weights = _doc_weights([prepared.chunks[c] for c in members])
            rows = torch.tensor(members)
            t = (topic_p[rows] * weights[:, None]).sum(0)
            s = (sent_p[rows] * weights[:, None]).sum(0)
            t_arg, s_arg = int(t.argmax()), int(s.argmax())
            pred = Prediction(
                topic=self.topics[t_arg],
                topic_score=float(t[t_arg]),
                sentiment=self.sentiments[s_arg],
                sentiment_score=float(s[s_arg]),
                probs={
                    "topic": dict(zip(self.topics, t.tolist(), strict=True)),
                    "sentiment": dict(zip(self.sentiments, s.tolist(), strict=True)),
                },
                model_version=self._version,
                chunks=len(members),
                cut=prepared.cuts[i],
            )
            if d.targets:
                ents = []
                for k, target in enumerate(d.targets):
                    found = [
                        ent_p[(c, k)] if self.has_entity_head else sent_p[c]
                        for c in members
                        if k in prepared.chunks[c].targets
                    ]
                    if not found:
                        ents.append(stand_in(target.symbol, pred))
                        continue
                    p = _toward_target(torch.stack(found), self._neutral)
                    arg = int(p.argmax())
                    ents.append(
                        EntitySentiment(
                            target.symbol,
                            self.sentiments[arg],
                            float(p[arg]),
                            dict(zip(self.sentiments, p.tolist(), strict=True)),
                        )
                    )
                pred = Prediction(**{**_fields(pred), "entities": tuple(ents)})
            out.append(pred)
        return out

    # ------------------------------------------------------------ public

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in input order."""
        return self.analyse([DocInput(_as_text(t)) for t in texts])

    def analyse(self, docs: Sequence[DocInput]) -> list[Prediction]:
        """One prediction per document (chunks, title, the sentiment toward each target)."""
        if not docs:
            return []
        return self._run(self._prepare(docs))

    def classify_iter(self, batches: Iterable[Sequence[str]]) -> Iterator[list[Prediction]]:
        """Classify a stream of batches, tokenising batch k+1 while batch k is in the encoder.

        Yields one list of predictions per input batch, in order. The batches iterable is
        consumed one ahead of what has been yielded.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="finsent-tokenize") as pool:
            it = iter([DocInput(_as_text(t)) for t in b] for b in batches)
            pending: Future[_Prepared] | None = None
            first = next(it, None)
            if first is None:
                return
            pending = pool.submit(self._prepare, first)
            while pending is not None:
                prepared = pending.result()
                nxt = next(it, None)
                pending = pool.submit(self._prepare, nxt) if nxt is not None else None
                yield self._run(prepared) if prepared.size else []

    def stats(self) -> dict[str, Any]:
        return {
            "model_version": self._version,
            "device": str(self.device),
            "precision": self.precision,
            "quantized": self.quantized,
            "threads": torch.get_num_threads(),
            "max_length": self.max_length,
            "batch_size": self.batch_size,
            "max_tokens": self.max_tokens,
            "classified": self.classified,
            "truncated": self.truncated,
        }


def _as_text(t: Any) -> str:
    return t if isinstance(t, str) else ("" if t is None else str(t))


def _fields(p: Prediction) -> dict[str, Any]:
    return {f: getattr(p, f) for f in Prediction.__dataclass_fields__}


def _pack(text: str, offsets: Sequence[tuple[int, int]], window: int) -> list[tuple[int, int]]:
    """Token ranges [a, b) of at most `window` tokens, cut at sentence ends where possible.

    A text that fits is one range (so a tweet is read exactly as before); otherwise whole
    sentences are packed greedily and a sentence longer than a window is split.
    """
    n = len(offsets)
    if n <= window:
        return [(0, n)]
    breaks = [m.end() for m in _SENTENCE_BREAK.finditer(text)]
    sentences: list[tuple[int, int]] = []
    start = 0
    for i in range(1, n + 1):
        if i == n or bisect.bisect_right(breaks, offsets[i][0]) != bisect.bisect_right(breaks, offsets[start][0]):
            sentences.append((start, i))
            start = i
    out: list[tuple[int, int]] = []
    a = b = 0
    for s, e in sentences:
        if e - a <= window:
            b = e
            continue
        if b > a:
            out.append((a, b))
        a = s
        while e - a > window:
            out.append((a, a + window))
            a += window
        b = e
    if b > a:
        out.append((a, b))
    return out


def _mentions(targets: Sequence[Target], offsets: Sequence[tuple[int, int]], title: bool) -> dict[int, list[int]]:
    """Per target (by index), the positions (after [CLS]) of tokens inside its mentions."""
    out: dict[int, list[int]] = {}
    if not offsets:
        return out
    lo, hi = offsets[0][0], offsets[-1][1]
    for k, t in enumerate(targets):
        spans: Sequence[Span] = t.title_spans if title else t.spans
        spans = [sp for sp in spans if sp[0] < hi and sp[1] > lo]
        if not spans:
            continue
        pos = [j + 1 for j, (a, b) in enumerate(offsets) if b > a and any(a < e and b > s for s, e in spans)]
        if pos:
            out[k] = pos
    return out


POLAR_MIN = 0.5  # a chunk speaks for a company when a polar class has at least this probability


def _toward_target(probs: torch.Tensor, neutral: int | None) -> torch.Tensor:
    """The sentiment toward a company from the chunks that mention it (n x classes).

    Routine mentions carry no opinion: when some chunks are clearly polar toward the company
    (a non-neutral class is their argmax with at least ``POLAR_MIN``), those chunks decide
    (their mean, so good and bad news in one article weigh against each other); otherwise
    the mean of all of them."""
    if len(probs) == 1 or neutral is None:
        return probs.mean(0)
    top, arg = probs.max(1)
    polar = (arg != neutral) & (top >= POLAR_MIN)
    return probs[polar].mean(0) if bool(polar.any()) else probs.mean(0)


def _doc_weights(chunks: Sequence[_Chunk]) -> torch.Tensor:
    """Body chunks by their tokens; the title as much as the whole body."""
    body = [c.weight for c in chunks if not c.title]
    total = sum(body) or 1.0
    has_title = any(c.title for c in chunks)
    share = 0.5 if has_title and body else 1.0
    w = [(1.0 - share if body else 1.0) if c.title else share * c.weight / total for c in chunks]
    return torch.tensor(w, dtype=torch.float32)


def _env_flag(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return None
    return raw in {"1", "true", "yes", "on"}


def build_classifier(setting: str | Path | None = None, **engine_kwargs: Any) -> Classifier:
    """The classifier for a model setting (``FINSENT_MODEL`` / ``--model``).

    ``"auto"`` (also empty or None) gives the shipped English model for English and the
    shipped multilingual model for every other language (a `Router`; the multilingual one
    loads on the first non-English document); ``"test-double"`` the torch-free
    ``KeywordTestDouble`` (tests and benchmarks only); anything else is an artifact folder
    that reads every language.
    """
    from models.multitask import MULTILINGUAL_MODEL_DIR, WEIGHTS_FILE
    from monitor.classify.router import Router

    value = str(setting).strip() if setting is not None else ""
    if value == "test-double":
        return KeywordTestDouble()
    if "quantize" not in engine_kwargs:
        engine_kwargs["quantize"] = _env_flag("FINSENT_QUANTIZE")
    if value and value != "auto":
        path = Path(value).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"model setting {value!r} is neither 'auto', 'test-double' nor a model folder")
        engine_kwargs.setdefault("model_dir", path)
        return Engine(**engine_kwargs)
    english = Engine(**engine_kwargs)
    if english.model_dir is not None or not (MULTILINGUAL_MODEL_DIR / WEIGHTS_FILE).is_file():
        return english  # FINSENT_MODEL / model_dir named one model, or no multilingual one is installed
    other = {k: v for k, v in engine_kwargs.items() if k != "model_dir"}
    return Router(english, lambda: Engine(model_dir=MULTILINGUAL_MODEL_DIR, **other))


def _read_rows(path: Path, text_column: str, title_column: str | None) -> Iterator[tuple[str, str | None]]:
    import csv
    import json
    import sys

    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict) or text_column not in row:
                    raise ValueError(f"{path}:{n}: not a JSON object with a {text_column!r} field")
                title = row.get(title_column) if title_column else None
                yield str(row[text_column] or ""), (str(title) if title else None)
        return
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        for col in (text_column, title_column):
            if col and col not in columns:
                raise ValueError(f"{path} has no column {col!r} (columns: {', '.join(columns)})")
        for row in reader:
            yield row[text_column] or "", (row[title_column] or None) if title_column else None


def classify_file(
    path: str | Path,
    text_column: str = "text",
    output: str | Path | None = None,
    model: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    title_column: str | None = None,
    matcher: Any = None,
    detect_lang: Any = None,
) -> int:
    """``finsent classify``: one JSON line per input row (CSV or JSONL) to ``output`` or stdout.

    Each line holds ``topic``, ``topic_score``, ``sentiment``, ``sentiment_score``, ``probs``,
    ``model_version``, ``chunks``, ``lang`` (from ``detect_lang(text)``) and ``entities``: per
    company the ``matcher`` (an ``EntityMatcher``) links, its symbol, name, the sentiment
    toward it and its mentions as character offsets into the text column (end exclusive).
    Returns the number of rows classified.
    """
    import itertools
    import json
    import sys

    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"no such file: {src}")
    classifier = (
        KeywordTestDouble() if model == "test-double" else build_classifier(model, batch_size=batch_size, device=device)
    )
    rows = _read_rows(src, text_column, title_column)
    n = 0
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(Path(output).open("w", encoding="utf-8")) if output else sys.stdout
        for batch in iter(lambda: list(itertools.islice(rows, batch_size)), []):
            docs, names, mentions = [], [], []
            for text, title in batch:
                links = matcher.link(text) if matcher is not None else []
                title_links = matcher.link(title) if matcher is not None and title else []
                by_symbol = {lk.symbol: lk for lk in links}
                for lk in title_links:
                    by_symbol.setdefault(lk.symbol, type(lk)(lk.symbol, lk.name, ()))
                title_spans = {lk.symbol: lk.mentions for lk in title_links}
                targets = tuple(Target(s, lk.mentions, title_spans.get(s, ())) for s, lk in by_symbol.items())
                docs.append(DocInput(text, title, targets))
                names.append({s: lk.name for s, lk in by_symbol.items()})
                mentions.append({s: lk.mentions for s, lk in by_symbol.items()})
            for doc, p, name, ment in zip(docs, analyse(classifier, docs), names, mentions, strict=True):
                row = p.as_dict()
                row["lang"] = detect_lang(doc.text) if detect_lang is not None else None
                row["entities"] = [
                    {
                        "symbol": e.symbol,
                        "name": name.get(e.symbol, e.symbol),
                        "sentiment": e.sentiment,
                        "sentiment_score": e.sentiment_score,
                        "mentions": [list(m) for m in ment.get(e.symbol, ())],
                    }
                    for e in p.entities
                ]
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += len(batch)
    if isinstance(classifier, Engine) and classifier.truncated:
        log.info(
            "%d of %d texts passed the cap of %d windows and were read in part (see each line's `cut`)",
            classifier.truncated,
            n,
            classifier.max_chunks,
        )
    return n
