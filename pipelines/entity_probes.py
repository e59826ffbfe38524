"""Short written checks of the sentiment toward each company, beside the FinEntity figures.

Call: ``run_probes(model_dir=None) -> dict`` or
``python -m pipelines.entity_probes [--model DIR] [--json]``.

FinEntity's test split (``finsent evaluate``) is the quality figure; these sentences are our
own, written on 2026-12-07 before any model was trained against them, to look at two
things FinEntity has few of:

- ``reported``: reported speech, the company as the speaker and its news hanging on
  "it" / "its" ("Pfizer said the FDA had rejected its application ..."), and two-company
  sentences ("Tesla falls as GM gains");
- ``articles``: the last paragraph of a 1,000-word article (``article``: routine paragraphs
  that name Boeing without opinion, the article ``tests/test_model.py`` reads) carrying
  one piece of news about Boeing, six of them with a third party acting on the company
  ("a federal court had ordered it to pay ..."), five of those bad news;
- ``third_party``: 12 sentences of other companies in that form ("Verizon said hackers had
  stolen the records of 20 million of its customers"), written later the same day, before
  any remedy for it was tried.

Each company's linked sentiment is compared with the one written next to it; the output
lists the misses. Used to weigh entity-branch training variants in ``models/card-notes.md``.
"""

from __future__ import annotations

import json
from typing import Any

import click

REPORTED: list[tuple[str, dict[str, str]]] = [
    (
        "Pfizer said the FDA had rejected its application for the new drug, sending its shares down 8%.",
        {"PFE": "negative"},
    ),
    (
        "Intel said customers had cancelled a large part of its orders for the quarter and that it would "
        "cut 15% of its workforce.",
        {"INTC": "negative"},
    ),
    (
        "Nike said retailers had pushed back orders and its inventory had swelled, and it lowered its "
        "forecast for the year.",
        {"NKE": "negative"},
    ),
    (
        "Microsoft said demand for its cloud services had exceeded expectations and raised its outlook.",
        {"MSFT": "positive"},
    ),
    (
        "Walmart said shoppers had flocked to its stores during the holidays, lifting its sales to a record.",
        {"WMT": "positive"},
    ),
    ("Ford said a court had ordered it to pay $1.7 billion in damages over faulty roofs.", {"F": "negative"}),
    ("Netflix said subscribers had left its service for the first time in a decade.", {"NFLX": "negative"}),
    ("Exxon Mobil said its board would meet on Thursday to review the annual budget.", {"XOM": "neutral"}),
    ("Delta Air Lines said it would publish its quarterly results on April 12.", {"DAL": "neutral"}),
    (
        "Starbucks said the union had called strikes at hundreds of its stores, disrupting its holiday sales.",
        {"SBUX": "negative"},
    ),
    (
        "Mastercard said regulators had approved its acquisition of the payments firm, and its shares rose 4%.",
        {"MA": "positive"},
    ),
    ("Amgen said a trial of its obesity drug had met all of its goals.", {"AMGN": "positive"}),
    ("Tesla gains as GM recalls 400,000 trucks", {"TSLA": "positive", "GM": "negative"}),
    ("Tesla falls as GM gains", {"TSLA": "negative", "GM": "positive"}),
    ("Ford said sales rose 10% while GM said its sales fell 5%.", {"F": "positive", "GM": "negative"}),
    (
        "Oracle said it had won a $10 billion contract, while IBM said the Pentagon had cancelled its deal.",
        {"ORCL": "positive", "IBM": "negative"},
    ),
]

# A third party acting on the company, told in its reported speech; written on 2026-12-07 in
# a later session, before any remedy for this form was tried (models/card-notes.md), as
# their held-out check.
THIRD_PARTY: list[tuple[str, dict[str, str]]] = [
    ("Caterpillar said a jury had found it liable for $900 million in patent damages.", {"CAT": "negative"}),
    ("Coca-Cola said tax authorities had ruled that it owes $3 billion in back taxes.", {"KO": "negative"}),
    ("Delta Air Lines said its pilots had voted to strike at its hubs next month.", {"DAL": "negative"}),
    ("Johnson & Johnson said a court had rejected its plan to settle the talc lawsuits.", {"JNJ": "negative"}),
    ("Verizon said hackers had stolen the records of 20 million of its customers.", {"VZ": "negative"}),
    ("Lockheed Martin said the Air Force had awarded it a $12 billion contract for new jets.", {"LMT": "positive"}),
    ("Eli Lilly said regulators had approved its Alzheimer's drug, and its shares rose 6%.", {"LLY": "positive"}),
    ("Home Depot said it would hold its annual shareholder meeting in Atlanta on May 20.", {"HD": "neutral"}),
    (
        "UnitedHealth said federal prosecutors had opened a criminal investigation into its billing.",
        {"UNH": "negative"},
    ),
    ("Chevron said OPEC had cut output, lifting its expected profit for the quarter.", {"CVX": "positive"}),
    ("Disney said cinemas had pulled its new film after weak ticket sales.", {"DIS": "negative"}),
    (
        "Southwest Airlines said the FAA had ordered it to ground 200 of its planes for engine inspections.",
        {"LUV": "negative"},
    ),
]

# The last paragraph of the Boeing article; the last one is tests/test_model.py's known miss.
ARTICLE_ENDINGS: list[tuple[str, str]] = [
    (
        "Late on Friday, Boeing said a federal court had ordered it to pay $2 billion to airlines over "
        "delivery delays, and its shares fell 6% in after-hours trading.",
        "negative",
    ),
    (
        "Late on Friday, Boeing said airlines had cancelled orders for 150 of its jets, that it would "
        "close two plants, and its shares plunged 9% in after-hours trading.",
        "negative",
    ),
    (
        "Late on Friday, Boeing said investigators had found cracks in the wings of 300 of its 787s, that "
        "it would stop deliveries for months, and it withdrew its forecast for the year.",
        "negative",
    ),
    (
        "Late on Friday, Boeing said the Justice Department had charged it with fraud over the "
        "certification of its jets, and that it expected a fine of several billion dollars.",
        "negative",
    ),
    (
        "Late on Friday, Boeing said its quarterly loss had widened to $3 billion, that it would cut "
        "10,000 jobs, and its shares fell 10% in after-hours trading.",
        "negative",
    ),
    (
        "Late on Friday, Boeing said airlines had ordered 300 of its jets, that it would raise "
        "production, and its shares jumped 7% in after-hours trading.",
        "positive",
    ),
    (
        "Late on Friday, Boeing said regulators had ordered its entire 737 MAX fleet grounded again after "
        "a cabin panel blew out in flight, that it would halt deliveries indefinitely and cut 10,000 "
        "jobs, and its shares plunged 12% in after-hours trading.",
        "negative",
    ),
]

# A long article of our own: routine industry paragraphs that name Boeing without opinion
# (tests/test_model.py reads the same article), then the one paragraph of news.
ROUTINE = (
    "Aircraft makers and their suppliers met in Toulouse this week for the annual industry "
    "conference, where executives discussed delivery schedules, engine availability and the "
    "training of new mechanics for the coming decade.",
    "Boeing, which has been rebuilding its supply chain for two years, presented its plans "
    "for a new wiring facility in South Carolina and described the hiring programme that "
    "goes with it, as it does at most conferences of this kind.",
    "Airlines at the event said passenger numbers on transatlantic routes had returned to "
    "the levels seen before the pandemic, while cargo volumes across the Pacific were about "
    "where they were a year earlier.",
    "Analysts at the conference spent much of their time on the outlook for narrow-body "
    "aircraft, the type most carriers use for short routes, and on how quickly production "
    "lines can be added in the next few years.",
    "Several panels covered sustainable aviation fuel, with speakers from refiners and "
    "airports describing the blending targets that European regulators have set for the "
    "end of the decade and the plants being built to meet them.",
    "Leasing companies, which own about half of the world's commercial jets, described the "
    "terms they are offering airlines and the typical length of the contracts they sign, "
    "which has changed little since last year.",
)
TITLE = "Aviation industry gathers in Toulouse"


def article(last: str, words: int = 950) -> str:
    """Routine paragraphs up to about ``words`` words, then ``last``."""
    paras: list[str] = []
    count = 0
    while count < words:
        for p in ROUTINE:
            paras.append(p)
            count += len(p.split())
    return "\n\n".join([*paras, last])


def run_probes(model_dir: str | None = None) -> dict[str, Any]:
    from monitor.classify.base import DocInput, Target
    from monitor.classify.engine import Engine
    from monitor.enrich.entities import build_matcher

    matcher = build_matcher()
    engine = Engine(model_dir=model_dir, device="cpu")

    def doc(text: str, title: str | None = None) -> DocInput:
        return DocInput(text, title, tuple(Target(lk.symbol, lk.mentions) for lk in matcher.link(text)))

    out: dict[str, Any] = {"model_version": engine.model_version}
    cases = [(doc(t), want, t) for t, want in REPORTED]
    cases += [(doc(article(last), TITLE), {"BA": want}, last) for last, want in ARTICLE_ENDINGS]
    cases += [(doc(t), want, t) for t, want in THIRD_PARTY]
    preds = engine.analyse([d for d, _, _ in cases])
    a, b = len(REPORTED), len(REPORTED) + len(ARTICLE_ENDINGS)
    for name, lo, hi in (("reported", 0, a), ("articles", a, b), ("third_party", b, len(cases))):
        right, total, misses = 0, 0, []
        for (_, want, text), p in zip(cases[lo:hi], preds[lo:hi], strict=True):
            got = {e.symbol: e.sentiment for e in p.entities}
            for symbol, label in want.items():
                total += 1
                if got.get(symbol) == label:
                    right += 1
                else:
                    misses.append({"text": text, "symbol": symbol, "want": label, "got": got.get(symbol)})
        out[name] = {"right": right, "total": total, "misses": misses}
    return out


@click.command()
@click.option("--model", "model_dir", default=None, help="Artifact folder (default: the shipped model).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def main(model_dir: str | None, as_json: bool) -> None:
    """Our written checks of the sentiment toward each company (see the module docstring)."""
    result = run_probes(model_dir)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"model {result['model_version']}")
    for name in ("reported", "articles", "third_party"):
        r = result[name]
        click.echo(f"{name}: {r['right']}/{r['total']} right")
        for m in r["misses"]:
            click.echo(f"  miss {m['symbol']}: {m['got']} (want {m['want']}): {m['text'][:90]}")


if __name__ == "__main__":
    main()
