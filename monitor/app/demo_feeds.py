"""The demo's news feed: an RSS document we write, served from a local HTTP server.

Items carry publication times from two hours ago to half an hour ahead; each request sees
only those already published, so `finsent sources run` finds new items as the demo runs.
The ETag follows the visible items, so an unchanged feed answers 304.
"""

from __future__ import annotations

import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.sax.saxutils import escape

HEADLINES = (
    ("Tesla deliveries miss forecasts as price cuts fail to lift demand", "TSLA"),
    ("Apple suppliers signal steady orders ahead of the autumn launch", "AAPL"),
    ("Nvidia extends rally after data-centre revenue tops estimates", "NVDA"),
    ("Regulators open a review of Tesla's driver-assistance claims", "TSLA"),
    ("Microsoft raises cloud capacity spending for the coming year", "MSFT"),
    ("Amazon expands same-day delivery to twelve more cities", "AMZN"),
    ("Banks set aside more for bad loans as consumer arrears climb", None),
    ("Treasury yields edge higher before the central bank's minutes", None),
    ("Oil slips as inventories build for a third straight week", None),
    ("Tesla shares fall as analysts trim margin expectations", "TSLA"),
    ("Alphabet settles a long-running advertising dispute", "GOOGL"),
    ("Meta's new headset draws mixed early reviews", "META"),
    ("Gold holds near its record as the dollar softens", None),
    ("JPMorgan beats on trading income, guides costs flat", "JPM"),
    ("Chipmakers slide on reports of tighter export rules", "NVDA"),
    ("Retail sales rise more than expected in the latest month", None),
    ("Tesla recalls vehicles over a seat-belt warning fault", "TSLA"),
    ("Apple wins dismissal of a patent suit over watch sensors", "AAPL"),
    ("Exxon lifts its buyback after higher refining margins", "XOM"),
    ("Euro steadies after weaker factory data from Germany", None),
    ("Netflix adds subscribers ahead of price increases", "NFLX"),
    ("Boeing delays a delivery target again on supplier problems", "BA"),
    ("Copper climbs as mines in South America report outages", None),
    ("Tesla board faces shareholder questions over pay package", "TSLA"),
)


def rss(items: list[tuple[str, str, str | None, datetime]], base: str) -> bytes:
    """An RSS 2.0 document of (guid, title, symbol, published) items."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel><title>finsent demo wire</title>',
        f"<link>{escape(base)}/</link><description>Headlines written for the finsent demo</description>",
    ]
    for guid, title, symbol, when in items:
        text = f"{title}." + (f" ${symbol}" if symbol else "")
        parts.append(
            "<item>"
            f'<guid isPermaLink="false">{escape(guid)}</guid><title>{escape(title)}</title>'
            f"<link>{escape(base)}/story/{escape(guid)}</link>"
            f"<description>{escape(text)}</description><pubDate>{format_datetime(when)}</pubDate>"
            "</item>"
        )
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


class DemoFeedServer:
    def __init__(self, start: datetime, *, spacing: timedelta = timedelta(minutes=6)) -> None:
        first = start - timedelta(hours=2)
        self.items = [(f"demo-{n}", title, symbol, first + n * spacing) for n, (title, symbol) in enumerate(HEADLINES)]
        self.now = lambda: datetime.now(UTC)
        feed = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/markets.rss":
                    self.send_error(404)
                    return
                visible = [i for i in feed.items if i[3] <= feed.now()]
                etag = '"' + hashlib.sha256(",".join(i[0] for i in visible).encode()).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                body = rss(visible, feed.url.rsplit("/", 1)[0])
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/markets.rss"

    def start(self) -> DemoFeedServer:
        threading.Thread(target=self.server.serve_forever, name="demo-feeds", daemon=True).start()
        return self

    def sources_json(self, topic: str, interval_seconds: float = 20) -> str:
        """`FINSENT_SOURCES` for the demo's `finsent sources run`."""
        return json.dumps(
            [
                {
                    "name": "demo-wire",
                    "type": "rss",
                    "url": self.url,
                    "topic": topic,
                    "interval_seconds": interval_seconds,
                }
            ]
        )

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
