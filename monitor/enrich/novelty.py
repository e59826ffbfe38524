"""Near-duplicate fingerprints: the same story counted once, however often it is reposted.

Pure logic (no I/O). The store asks `bands(text)` for a document's LSH band keys, looks
them up in the `near_dup_bands` table among documents published within
`detect.novelty_horizon_minutes`, and marks the document `duplicate_of` the earliest
match. The detector then counts only novel documents (`novel_*` in `minute_counts`), so
a retweet storm of one headline weighs like one document, not like a thousand.

How it works, and why these choices:

* `normalize` removes what differs between copies of one post but says nothing new:
  case, URLs (every repost has its own short link), a leading ``RT @user:``, @mentions,
  ``$`` in cashtags, punctuation and runs of whitespace. Digits stay: "falls 3%" and
  "falls 30%" are different news.
* Shingles are character 5-grams of the normalized text. Headlines are short (8-15
  words); with word n-grams one changed word already moves Jaccard below any useful
  threshold, while character shingles degrade gracefully with small edits ("via
  @desk", an extra "!!", a changed trailing hashtag).
* A MinHash signature of ``num_perm`` = 128 values estimates Jaccard similarity. It is
  cut into ``b`` bands of ``r`` rows; two texts share at least one band key with
  probability ``1 - (1 - J**r)**b``, an S-curve whose midpoint is near
  ``(1/b)**(1/r)``. `lsh_params` picks ``(b, r)`` for the configured
  `novelty_threshold` the way datasketch's MinHashLSH does (minimise the weighted area
  of false positives below and false negatives above the threshold). For the default
  0.7 with 128 permutations that is 14 bands of 9 rows: S-curve midpoint 0.75,
  P(match) = 0.13 at J=0.6, 0.44 at J=0.7, 0.87 at J=0.8, 0.999 at J=0.9. Reposts
  differ by far less than that (J > 0.9 after normalizing), so they match almost
  surely; distinct headlines about one company sit below J=0.3 and almost never do.
  See `collision_probability` to inspect the curve.
* The permutation seed and hashing scheme are fixed, so every worker, every process and
  every replay computes the same band keys for the same text: this is what lets
  several workers share one `near_dup_bands` table.

A band key is ``"<b>x<r>:<band index>:<hex digest>"`` (at most 40 characters, the column
width): the parameters are part of the key, so changing the threshold never matches a
new band against an old, differently cut one.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from datasketch import MinHash

NUM_PERM = 128
SHINGLE = 5
_SEED = 1
_SCHEME = "affine32"  # pinned: band keys must not change with a datasketch upgrade

_URL = re.compile(r"(?:https?://|www\.)\S+", re.I)
_RT = re.compile(r"^\s*(?:rt\b\s*:?\s*)+(?:@\w+\s*:?\s*)?", re.I)
_MENTION = re.compile(r"(?<!\w)@\w+")
_NONWORD = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """The part of a post that two copies of it share.

    >>> normalize("RT @desk: $TSLA plunges after recall!! https://t.co/x1")
    'tsla plunges after recall'
    """
    s = unicodedata.normalize("NFKC", text).lower()
    s = _URL.sub(" ", s)
    # A retweet prefix may be repeated ("RT @a: RT @b: ...").
    prev = None
    while prev != s:
        prev = s
        s = _RT.sub("", s)
    s = _MENTION.sub(" ", s)
    s = s.replace("_", " ")
    s = _NONWORD.sub(" ", s)
    return _SPACE.sub(" ", s).strip()


def shingles(norm: str, k: int = SHINGLE) -> set[str]:
    """Character k-grams of normalized text; a text shorter than k is its own shingle."""
    if not norm:
        return set()
    if len(norm) <= k:
        return {norm}
    return {norm[i : i + k] for i in range(len(norm) - k + 1)}


def collision_probability(jaccard: float | np.ndarray, b: int, r: int) -> float | np.ndarray:
    """Probability that two texts with this Jaccard similarity share at least one band."""
    return 1.0 - (1.0 - np.asarray(jaccard, dtype=float) ** r) ** b


@lru_cache(maxsize=32)
def lsh_params(threshold: float, num_perm: int = NUM_PERM) -> tuple[int, int]:
    """(bands, rows) for a Jaccard threshold: minimise false-positive + false-negative area.

    The same criterion as datasketch's MinHashLSH with equal weights, computed here so
    the result is a documented, tested function of its inputs.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"novelty threshold must be in (0, 1], got {threshold}")
    xs_fp = np.linspace(0.0, threshold, 201)
    xs_fn = np.linspace(threshold, 1.0, 201)
    best: tuple[float, int, int] | None = None
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            fp = np.trapezoid(collision_probability(xs_fp, b, r), xs_fp)
            fn = np.trapezoid(1.0 - collision_probability(xs_fn, b, r), xs_fn)
            err = float(fp + fn)
            if best is None or err < best[0] - 1e-12:
                best = (err, b, r)
    assert best is not None
    return best[1], best[2]


@lru_cache(maxsize=4)
def _permutations(num_perm: int) -> np.ndarray:
    return MinHash(num_perm=num_perm, seed=_SEED, scheme=_SCHEME).permutations


def signature(text: str, num_perm: int = NUM_PERM) -> np.ndarray | None:
    """The MinHash signature of a text (None when nothing is left after normalizing)."""
    sh = shingles(normalize(text))
    if not sh:
        return None
    m = MinHash(num_perm=num_perm, seed=_SEED, scheme=_SCHEME, permutations=_permutations(num_perm))
    m.update_batch(sorted(s.encode("utf-8") for s in sh))
    return m.hashvalues


def bands_of_signature(sig: np.ndarray, threshold: float, num_perm: int = NUM_PERM) -> list[str]:
    b, r = lsh_params(threshold, num_perm)
    out = []
    for i in range(b):
        chunk = np.ascontiguousarray(sig[i * r : (i + 1) * r]).astype("<u8").tobytes()
        digest = hashlib.blake2b(chunk, digest_size=12).hexdigest()
        out.append(f"{b}x{r}:{i}:{digest}")
    return out


def bands(text: str, threshold: float = 0.7, num_perm: int = NUM_PERM) -> list[str]:
    """LSH band keys of a text; two texts sharing any key are near-duplicates.

    `threshold` is `settings.detect.novelty_threshold`. A text with no content left
    after `normalize` (only a link or a mention) gets no keys and is always novel.
    """
    sig = signature(text, num_perm)
    if sig is None:
        return []
    return bands_of_signature(sig, threshold, num_perm)


def bands_many(texts: Iterable[str], threshold: float = 0.7, num_perm: int = NUM_PERM) -> list[list[str]]:
    """`bands` for a batch (what the store calls per poll batch)."""
    return [bands(t, threshold, num_perm) for t in texts]
