"""The language of a text, when the message does not say: a script rule for Chinese,
Japanese and Korean (decisive, and robust on four-character posts), else a small
character n-gram model (PyPI `py3langid`) over the languages financial feeds carry.

Pure logic. `detect(text) -> str` returns an ISO 639-1 code; "en" when the text gives
nothing to go on (empty, only symbols and cashtags).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(r"[\uac00-\ud7af]")
_LETTERS = re.compile(r"[^\W\d_]")
# Cashtags, URLs, mentions and hashtags say nothing about the language of the sentence.
_NOISE = re.compile(r"https?://\S+|[$#@][\w.\-]+")

LANGUAGES = ("en", "zh", "ja", "ko", "de", "fr", "es", "it", "pt", "nl", "ru", "ar", "tr", "pl", "sv", "id", "vi")


@cache
def _model() -> Any:
    from py3langid.langid import _load_identifier

    return _load_identifier(norm_probs=True, langs=[lang for lang in LANGUAGES if lang not in {"zh", "ja", "ko"}])


def detect(text: str, min_confidence: float = 0.8) -> str:
    clean = _NOISE.sub(" ", text or "")
    letters = len(_LETTERS.findall(clean))
    if not letters:
        return "en"
    if _KANA.search(clean):
        return "ja"
    if len(_HANGUL.findall(clean)) / letters > 0.3:
        return "ko"
    if len(_HAN.findall(clean)) / letters > 0.3:
        return "zh"
    lang, conf = _model().classify(clean)
    return str(lang) if conf >= min_confidence else "en"
