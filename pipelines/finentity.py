"""The FinEntity paragraphs (entity-level sentiment in news) as training and test data.

FinEntity (Tang et al., EMNLP 2023; ODC-BY 1.0) is read from a path, never copied into the
repository. Each paragraph carries company spans with the sentiment toward that company.

The file is split by a hash of each paragraph's text, so the split is the same on every
machine and does not depend on the order of the file: 70 % train, 10 % valid (epoch choice
and the entity head's temperature), 20 % test (kept out of training and tuning; the figure
the model card reports).

Call: ``load_paragraphs(path=None) -> list[Paragraph]``, ``split_of(paragraph) -> str``,
``targets(paragraphs) -> list[TargetExample]`` (one per annotated span),
``doc_examples(paragraphs) -> list[tuple[str, int]]`` (paragraphs whose spans all agree, as
document-level sentiment examples), ``cashtag_targets(texts, labels)`` (tweets about exactly
one cashtag, their label taken as the sentiment toward it), ``name_targets(texts, labels,
link)`` (tweets naming one company in words), ``reported(units, seed=0)`` (one-company texts
retold as the company's reported speech; both are opt-in training data, see
``models/card-notes.md``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.labels import SENTIMENTS
from pipelines.data import REPO_ROOT

LABELS = {"Negative": "negative", "Neutral": "neutral", "Positive": "positive"}
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True, slots=True)
class Paragraph:
    text: str
    spans: tuple[tuple[int, int, str], ...]  # (start, end, sentiment), end exclusive


@dataclass(frozen=True, slots=True)
class TargetExample:
    """The sentiment toward the company at ``spans`` (all its mentions) in ``text``."""

    text: str
    spans: tuple[tuple[int, int], ...]
    label: int


def default_path() -> Path:
    return REPO_ROOT.parent / "shared" / "data" / "finentity" / "finentity_train.json"


def load_paragraphs(path: str | Path | None = None) -> list[Paragraph]:
    p = Path(path) if path else default_path()
    if not p.is_file():
        raise FileNotFoundError(f"no FinEntity file at {p}; pass its path (see docs/model.md)")
    out = []
    for item in json.loads(p.read_text(encoding="utf-8")):
        spans = []
        for a in item.get("annotations", []):
            label = LABELS.get(str(a.get("label") or a.get("tag")))
            if label is None:
                continue
            spans.append((int(a["start"]), int(a["end"]), label))
        if spans:
            out.append(Paragraph(str(item["content"]), tuple(sorted(spans))))
    return out


def split_of(par: Paragraph) -> str:
    bucket = int(hashlib.sha256(par.text.encode("utf-8")).hexdigest()[:8], 16) % 100
    return "test" if bucket < 20 else "valid" if bucket < 30 else "train"


def split(paragraphs: Sequence[Paragraph]) -> dict[str, list[Paragraph]]:
    out: dict[str, list[Paragraph]] = {s: [] for s in SPLITS}
    for par in paragraphs:
        out[split_of(par)].append(par)
    return out


def _norm(name: str) -> str:
    return re.sub(r"\W+", " ", name).strip().lower()


def targets(paragraphs: Sequence[Paragraph]) -> list[TargetExample]:
    """One example per annotated company; its other mentions with the same name (and the
    same sentiment) are marked too, as the linker marks every mention of a company."""
    out = []
    for par in paragraphs:
        by_name: dict[tuple[str, str], list[tuple[int, int]]] = {}
        for s, e, label in par.spans:
            by_name.setdefault((_norm(par.text[s:e]), label), []).append((s, e))
        for (_, label), spans in by_name.items():
            out.append(TargetExample(par.text, tuple(spans), SENTIMENTS.index(label)))
    return out


def doc_examples(paragraphs: Sequence[Paragraph]) -> list[tuple[str, int]]:
    """Paragraphs whose companies all share one sentiment, as document-level examples."""
    out = []
    for par in paragraphs:
        labels = {label for _, _, label in par.spans}
        if len(labels) == 1:
            out.append((par.text, SENTIMENTS.index(labels.pop())))
    return out


_CASHTAG = re.compile(r"(?<![\w$])\$[A-Za-z][A-Za-z0-9]{0,5}(?:[.\-][A-Za-z]{1,2})?\b")


def cashtag_targets(texts: Sequence[str], labels: Sequence[int]) -> list[TargetExample]:
    """Tweets naming exactly one cashtag: the tweet's sentiment is the sentiment toward it."""
    out = []
    for text, label in zip(texts, labels, strict=True):
        found = list(_CASHTAG.finditer(text))
        if found and len({m.group(0).upper() for m in found}) == 1:
            out.append(TargetExample(text, tuple((m.start(), m.end()) for m in found), int(label)))
    return out


def token_span_indices(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
    """Token positions whose characters overlap any span (special tokens have (0, 0))."""
    idx = []
    for i, (a, b) in enumerate(offsets):
        if b <= a:
            continue
        if any(a < e and b > s for s, e in spans):
            idx.append(i)
    return idx


def single_target(paragraphs: Sequence[Paragraph]) -> list[TargetExample]:
    """Paragraphs about one company (every span names it, with one sentiment)."""
    out = []
    for ex in targets(paragraphs):
        same = [par for par in paragraphs if par.text == ex.text]
        if same and len(same[0].spans) == len(ex.spans):
            out.append(ex)
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z$\"'(])")


def sentence_units(units: Sequence[TargetExample], max_chars: int = 220) -> list[TargetExample]:
    """The sentences of one-company texts that name the company, as texts of their own
    (short clauses for the two-company joins: "Tesla gains" next to "GM recalls ...")."""
    out = []
    for u in units:
        start = 0
        for m in [*_SENTENCE_END.finditer(u.text), None]:
            end = m.start() if m else len(u.text)
            spans = tuple((a - start, b - start) for a, b in u.spans if start <= a and b <= end)
            piece = u.text[start:end]
            if spans and len(piece) <= max_chars and piece.strip() != u.text.strip():
                out.append(TargetExample(piece, spans, u.label))
            if m:
                start = m.end()
    return out


# Mostly joins inside one sentence ("Tesla gains as GM recalls ..."): across a sentence
# break the two readings separate easily; within one, a head that reads the document's
# tone gives the second company the first one's sentiment.
_CONNECTORS = (
    "; meanwhile, ",
    ". In other news, ",
    ". ",
    " while ",
    " as ",
    ", while ",
    " even as ",
    ", but ",
    " whereas ",
    " after ",
    ", and ",
    " and ",
)


def composites(units: Sequence[TargetExample], n: int, seed: int = 0) -> list[TargetExample]:
    """Texts about two companies with different sentiments, made by joining two texts that
    are each about one company ("Tesla gains as GM recalls 400,000 trucks" is such a join).

    The document's overall tone then says nothing about either company, so the entity head
    must read each company's own mention in its clause. Both targets of each join are
    examples. Built from training texts only.
    """
    import random

    rng = random.Random(seed)
    by_label: dict[int, list[TargetExample]] = {}
    for u in units:
        by_label.setdefault(u.label, []).append(u)
    labels = sorted(by_label)
    out: list[TargetExample] = []
    if len(labels) < 2:
        return out
    for _ in range(n):
        la, lb = rng.sample(labels, 2)
        a, b = rng.choice(by_label[la]), rng.choice(by_label[lb])
        left = a.text.rstrip().rstrip(".")
        right = b.text.strip()
        joint = rng.choice(_CONNECTORS)
        shift = len(left) + len(joint)
        # Lower-case the first letter after a mid-sentence connector, unless a mention starts there.
        mid_sentence = joint[-2:] not in (". ", ", ") or joint.endswith("and ")
        starts_with_mention = any(s == 0 for s, _ in b.spans)
        if mid_sentence and not starts_with_mention and right[:1].isupper() and right[1:2].islower():
            right = right[0].lower() + right[1:]
        text = left + joint + right
        lead = len(b.text) - len(b.text.lstrip())
        out.append(TargetExample(text, a.spans, a.label))
        out.append(TargetExample(text, tuple((s - lead + shift, e - lead + shift) for s, e in b.spans), b.label))
    return out


def name_targets(
    texts: Sequence[str], labels: Sequence[int], link: Callable[[str], Sequence[tuple[int, int]] | None]
) -> list[TargetExample]:
    """Tweets that name exactly one company in words (no cashtag): the tweet's sentiment is
    the sentiment toward it. ``link(text)`` gives that company's mentions, or None when the
    text names no company or more than one (the product's own matcher decides)."""
    out = []
    for text, label in zip(texts, labels, strict=True):
        if _CASHTAG.search(text):
            continue
        spans = link(text)
        if spans:
            out.append(TargetExample(text, tuple(spans), int(label)))
    return out


# Reported speech: the company is the speaker and the news about it hangs on "it" / "its"
# ("Boeing said regulators had ordered its fleet grounded"). Made from texts whose first
# word is the company, so the pronoun refers to it and the label carries over.
_FRAMES = (
    "{name} said ",
    "{name} said on Friday that ",
    "Late on Tuesday, {name} said ",
    "In a statement, {name} said ",
    "{name} told investors that ",
    "{name} said in a filing that ",
)
_STOCK_WORDS = ("shares", "stock", "stocks")


_AUX = frozenset(("has", "had", "was", "is", "will", "would", "could", "may", "might", "can", "did", "does"))


def _verb_like(words: Sequence[str]) -> bool:
    """The word after the company reads as its verb (or a stock word): "recalls", "posted",
    "has", "shares"; not "and", "down", "close" or a headline passive ("downgraded to")."""
    w = words[0]
    if not (w.isalpha() and w[:1].islower()):
        return False
    if w in _AUX or w in _STOCK_WORDS:
        return True
    if w.endswith("ed"):
        nxt = words[1].split()[0] if len(words) > 1 and words[1].split() else ""
        return nxt not in ("to", "at", "by", "as", "on", "in", "after", "from")
    return w.endswith("s") and not w.endswith("ss")


def reported(units: Sequence[TargetExample], seed: int = 0) -> list[TargetExample]:
    """One-company texts that start with the company, retold with it as the speaker:
    "GM recalls 400,000 trucks" -> "GM said it recalls 400,000 trucks", "Tesla's sales fell"
    -> "In a statement, Tesla said its sales fell". Its later mentions stay marked. Headline
    passives ("X downgraded to sell"), verbless headlines ("X down 6%") and cashtags are
    left out: "it downgraded" would flip the meaning, "$F said" reads as no news does."""
    import random

    rng = random.Random(seed)
    out = []
    for u in units:
        s, e = min(u.spans)
        if s != 0 or u.text.startswith("$"):
            continue
        name, after = u.text[:e], u.text[e:]
        words = after.split(maxsplit=1)
        if after[:2] in ("'s", "’s"):
            pronoun, cut = "its", e + 2
        elif after[:1] == " " and words and _verb_like(words):
            pronoun, cut = ("its" if words[0] in _STOCK_WORDS else "it"), e
        else:
            continue
        prefix = rng.choice(_FRAMES).format(name=name)
        head = prefix + pronoun
        text = head + u.text[cut:].rstrip()
        shift = len(head) - cut
        spans = ((prefix.index(name), prefix.index(name) + len(name)),) + tuple(
            (a + shift, b + shift) for a, b in sorted(u.spans)[1:] if a >= cut
        )
        out.append(TargetExample(text, spans, u.label))
    return out
