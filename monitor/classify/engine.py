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

Robustness: ``None``/non-strings are coerced to text, empty strings are classified (as the
model sees ``[CLS] [SEP]``), huge strings are cut before tokenisation and then truncated to
the model window; ``truncated`` counts how many texts lost tokens that way.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from monitor.classify.base import Classifier, KeywordTestDouble, Prediction

log = logging.getLogger(__name__)

# Characters kept per text before tokenising, per token of the model window: far more than
# any real tokenisation needs (a word piece is >= 1 char), so the cut never changes the
# result for a text that fits, while a 10 MB string costs no more than a long article.
_CHARS_PER_TOKEN_CAP = 16


@dataclass
class _Prepared:
    """A tokenised batch: buckets of (positions in the batch, input_ids, attention_mask)."""

    size: int
    buckets: list[tuple[list[int], torch.Tensor, torch.Tensor]]
    truncated: int


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
        self.precision = precision
        self.quantized = precision == "int8"
        # Rounding padded widths up keeps the set of shapes small, so oneDNN (bf16 on CPU)
        # and cuDNN/cuBLAS reuse their planned kernels instead of re-planning per batch.
        self._pad_multiple = 1 if precision in {"fp32", "int8"} and self.device.type == "cpu" else 8
        self.model = model.eval()
        self._tok = tokenizer.backend_tokenizer
        self._tok.no_padding()
        self._tok.enable_truncation(self.max_length)
        self._pad_id = int(tokenizer.pad_token_id or 0)
        self._lock = threading.Lock()
        #: Texts that lost tokens to the model window (or to the character cap) so far.
        self.truncated = 0
        #: Texts classified so far.
        self.classified = 0

    @property
    def model_version(self) -> str:
        return self._version

    # ------------------------------------------------------------ tokenisation

    def _prepare(self, texts: Sequence[Any]) -> _Prepared:
        cap = self.max_length * _CHARS_PER_TOKEN_CAP
        clean: list[str] = []
        cut: list[bool] = []
        for t in texts:
            s = t if isinstance(t, str) else ("" if t is None else str(t))
            cut.append(len(s) > cap)
            clean.append(s[:cap])
        encodings = self._tok.encode_batch(clean)
        lengths = [len(e.ids) for e in encodings]
        truncated = sum(1 for e, c in zip(encodings, cut, strict=True) if c or e.overflowing)
        order = sorted(range(len(clean)), key=lengths.__getitem__)
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
                seq = encodings[i].ids
                ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, : len(seq)] = 1
            buckets.append((idx, ids, mask))
            start = end
        return _Prepared(len(clean), buckets, truncated)

    # ------------------------------------------------------------ forward

    def _run(self, prepared: _Prepared) -> list[Prediction]:
        topic_p = torch.empty((prepared.size, len(self.topics)), dtype=torch.float32)
        sent_p = torch.empty((prepared.size, len(self.sentiments)), dtype=torch.float32)
        with self._lock, torch.inference_mode():
            for idx, ids, mask in prepared.buckets:
                t, s = self.model.probabilities(ids.to(self.device), mask.to(self.device))
                where = torch.tensor(idx)
                topic_p[where] = t[: len(idx)].float().cpu()
                sent_p[where] = s[: len(idx)].float().cpu()
            self.truncated += prepared.truncated
            self.classified += prepared.size
        return self._predictions(topic_p, sent_p)

    def _predictions(self, topic_p: torch.Tensor, sent_p: torch.Tensor) -> list[Prediction]:
        t_best, t_arg = topic_p.max(-1)
        s_best, s_arg = sent_p.max(-1)
        topic_rows, sent_rows = topic_p.tolist(), sent_p.tolist()
        out: list[Prediction] = []
        for i, (trow, srow) in enumerate(zip(topic_rows, sent_rows, strict=True)):
            out.append(
                Prediction(
                    topic=self.topics[int(t_arg[i])],
                    topic_score=float(t_best[i]),
                    sentiment=self.sentiments[int(s_arg[i])],
                    sentiment_score=float(s_best[i]),
                    probs={
                        "topic": dict(zip(self.topics, trow, strict=True)),
                        "sentiment": dict(zip(self.sentiments, srow, strict=True)),
                    },
                    model_version=self._version,
                )
            )
        return out

    # ------------------------------------------------------------ public

    def classify(self, texts: Sequence[str]) -> list[Prediction]:
        """One prediction per text, in input order."""
        if not texts:
            return []
        return self._run(self._prepare(texts))

    def classify_iter(self, batches: Iterable[Sequence[str]]) -> Iterator[list[Prediction]]:
        """Classify a stream of batches, tokenising batch k+1 while batch k is in the encoder.

        Yields one list of predictions per input batch, in order. The batches iterable is
        consumed one ahead of what has been yielded.
        """
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="finsent-tokenize") as pool:
            it = iter(batches)
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


def _env_flag(name: str) -> bool | None:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return None
    return raw in {"1", "true", "yes", "on"}


def build_classifier(setting: str | Path | None = None, **engine_kwargs: Any) -> Classifier:
    """The classifier for a model setting (``FINSENT_MODEL`` / ``--model``).

    ``"test-double"`` gives the torch-free ``KeywordTestDouble`` (tests and benchmarks only);
    empty or None gives the shipped artifact; anything else is an artifact folder.
    """
    value = str(setting).strip() if setting is not None else ""
    if value == "test-double":
        return KeywordTestDouble()
    if value:
        path = Path(value).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"model setting {value!r} is neither 'test-double' nor a model folder")
        engine_kwargs.setdefault("model_dir", path)
    if "quantize" not in engine_kwargs:
        engine_kwargs["quantize"] = _env_flag("FINSENT_QUANTIZE")
    return Engine(**engine_kwargs)


def _read_texts(path: Path, text_column: str) -> Iterator[str]:
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
                yield str(row[text_column] or "")
        return
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if text_column not in (reader.fieldnames or []):
            raise ValueError(f"{path} has no column {text_column!r} (columns: {', '.join(reader.fieldnames or [])})")
        for row in reader:
            yield row[text_column] or ""


def classify_file(
    path: str | Path,
    text_column: str = "text",
    output: str | Path | None = None,
    model: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
) -> int:
    """``finsent classify``: one JSON line per input row (CSV or JSONL) to ``output`` or stdout.

    Each line holds ``topic``, ``topic_score``, ``sentiment``, ``sentiment_score``, ``probs``
    and ``model_version``. Returns the number of rows classified.
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
    texts = _read_texts(src, text_column)
    batches = iter(lambda: list(itertools.islice(texts, batch_size)), [])
    results: Iterable[list[Prediction]]
    if isinstance(classifier, Engine):
        results = classifier.classify_iter(batches)
    else:
        results = (classifier.classify(b) for b in batches)
    n = 0
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(Path(output).open("w", encoding="utf-8")) if output else sys.stdout
        for preds in results:
            for p in preds:
                out.write(json.dumps(p.as_dict(), ensure_ascii=False) + "\n")
            n += len(preds)
    if isinstance(classifier, Engine) and classifier.truncated:
        log.info(
            "%d of %d texts were longer than the %d-token window and were truncated",
            classifier.truncated,
            n,
            classifier.max_length,
        )
    return n
