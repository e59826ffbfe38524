"""RSS and Atom feeds as the message contract: a fetched document in, messages out.

No I/O: `monitor.app.sources` fetches and produces. feedparser reads both formats (and
tells which it was); a document that is not well-formed XML is refused as a whole rather
than read in part, so a truncated response never yields truncated items that the
de-duplication would then keep forever.
"""

from __future__ import annotations

import calendar
import hashlib
import html
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

MAX_TEXT_CHARS = 20_000
MAX_TITLE_CHARS = 1_000


class FeedError(ValueError):
    """The document is not a feed finsent can read; the message says why."""


@dataclass(frozen=True, slots=True)
class FeedItem:
    id: str  # the guid, else the link, else a hash of the content
    message: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Feed:
    kind: str  # "rss" or "atom"
    title: str | None
    items: list[FeedItem]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("p", "br", "div", "li", "tr", "h1", "h2", "h3", "h4"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    """Markup out, entities decoded, whitespace collapsed (paragraphs kept as newlines)."""
    if "<" not in value and "&" not in value:
        text = value
    else:
        p = _Text()
        try:
            p.feed(value)
            p.close()
            text = "".join(p.parts)
        except Exception:  # markup HTMLParser cannot follow: keep the text without tags
            text = html.unescape(re.sub(r"<[^>]*>", " ", value))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return "\n".join(line for line in lines if line).strip()


def _when(entry: Any) -> datetime | None:
    for name in ("published_parsed", "updated_parsed", "created_parsed"):
        t = entry.get(name)
        if t:
            try:
                return datetime.fromtimestamp(calendar.timegm(t), UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def item_id(entry: Any) -> str | None:
    """The item's identity: its guid (RSS) or id (Atom), else its link, else its content."""
    for name in ("id", "guid", "link"):
        v = entry.get(name)
        if isinstance(v, str) and v.strip():
            return v.strip()
    basis = "\x1f".join(str(entry.get(k) or "") for k in ("title", "summary"))
    if not basis.strip("\x1f"):
        return None
    return "sha256:" + hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()


def _body(entry: Any) -> str:
    contents = entry.get("content") or []
    for c in contents:
        value = c.get("value") if isinstance(c, dict) else None
        if value:
            return str(value)
    return str(entry.get("summary") or entry.get("description") or "")


def to_message(entry: Any, source: str, *, max_text_chars: int = MAX_TEXT_CHARS) -> FeedItem | None:
    """One entry as the contract's message (`kind = news`), or None when it has no text."""
    ident = item_id(entry)
    title = _clip(html_to_text(str(entry.get("title") or "")), MAX_TITLE_CHARS)
    text = _clip(html_to_text(_body(entry)), max_text_chars)
    if not text:
        text = title
    if ident is None or not text:
        return None
    message: dict[str, Any] = {
        # The document id: the same item from the same source is the same document.
        "id": "feed:" + hashlib.sha256(f"{source}\x1f{ident}".encode("utf-8", "replace")).hexdigest()[:40],
        "text": text,
        "source": source,
        "kind": "news",
    }
    if title and title != text:
        message["title"] = title
    link = entry.get("link")
    if isinstance(link, str) and link.startswith(("http://", "https://")):
        message["url"] = link
    when = _when(entry)
    if when is not None:
        message["published_at"] = when.isoformat()
    message["guid"] = _clip(ident, 2000)
    return FeedItem(ident, message)


def parse(
    content: bytes, source: str, *, content_type: str | None = None, max_text_chars: int = MAX_TEXT_CHARS
) -> Feed:
    """A fetched document as a feed; raises `FeedError` for anything that is not one.

    Duplicate items (the same guid twice in one document) are kept once.
    """
    import feedparser

    headers = {"content-type": content_type} if content_type else None
    parsed = feedparser.parse(content, response_headers=headers)
    version = str(parsed.get("version") or "")
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        # A wrong declared encoding is harmless (feedparser re-decodes); anything else
        # means the XML is broken, and a broken document is not read in part.
        if not isinstance(exc, feedparser.CharacterEncodingOverride):
            raise FeedError(f"not well-formed XML: {type(exc).__name__}: {str(exc)[:200]}")
    if not version:
        raise FeedError("not an RSS or Atom document")
    seen: set[str] = set()
    items: list[FeedItem] = []
    for entry in parsed.entries:
        item = to_message(entry, source, max_text_chars=max_text_chars)
        if item is None or item.id in seen:
            continue
        seen.add(item.id)
        items.append(item)
    title = parsed.feed.get("title") if parsed.get("feed") else None
    return Feed("atom" if version.startswith("atom") else "rss", title, items)


def article_text(page: str, url: str | None = None) -> str | None:
    """The main text of an article page (trafilatura), or None when none is found."""
    import trafilatura

    text = trafilatura.extract(page, url=url, include_comments=False, include_tables=False, favor_precision=True)
    text = " ".join(text.split()) if text else ""
    return text or None
