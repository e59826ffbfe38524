"""Silence matchers' regular expressions run under the alert lock, so a pattern must not be
able to stall alerting: they are RE2 (linear time), and what RE2 cannot do (backreferences,
lookarounds) is refused with a clear error when the silence is made."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from monitor.alerting.matchers import Matcher, MatcherError, parse_matcher


def test_catastrophic_pattern_matches_in_linear_time() -> None:
    # Under a backtracking engine `(a+)+b` against 40 a's takes 2**40 steps: hours.
    code = (
        "import time; from monitor.alerting.matchers import parse_matcher; "
        "m = parse_matcher('key_value=~(a+)+b'); t = time.monotonic(); "
        "assert not m.matches({'key_value': 'a' * 40}); assert m.matches({'key_value': 'aab'}); "
        "print(time.monotonic() - t)"
    )
    t = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a catastrophic silence pattern stalled matching for {time.monotonic() - t:.0f}s")
    assert r.returncode == 0, r.stderr
    assert float(r.stdout.strip().splitlines()[-1]) < 0.5


@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=AAPL)A.*", r"(?<!X)Y", "(unclosed"])
def test_patterns_re2_cannot_run_are_refused_clearly(pattern: str) -> None:
    with pytest.raises(MatcherError, match="regular expression"):
        parse_matcher(f"topic=~{pattern}")


def test_regex_matchers_keep_alertmanager_semantics() -> None:
    m = Matcher("topic", "Earn.*", "=~")
    assert m.matches({"topic": "Earnings"}) and not m.matches({"topic": "Pre-Earnings"})  # anchored
    assert Matcher("topic", "Earn.*", "!~").matches({"topic": "Macro"})
    assert Matcher("key_value", "AAPL|MSFT", "=~").matches({"key_value": "MSFT"})
    assert Matcher("key_value", "", "=~").matches({})  # a missing label is the empty string
