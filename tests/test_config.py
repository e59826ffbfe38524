"""Configuration precedence (flag > env > TOML > default) and error messages."""

from __future__ import annotations

import pytest

from monitor.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for k in list(os.environ):
        if k.startswith("FINSENT_"):
            monkeypatch.delenv(k)


def write(tmp_path, body: str):  # type: ignore[no-untyped-def]
    p = tmp_path / "finsent.toml"
    p.write_text(body)
    return p


def test_defaults_match_contract() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///finsent.db"
    assert s.kafka_bootstrap == "127.0.0.1:9092"
    assert s.kafka_topics == ("news", "comments")
    assert s.kafka_group == "finsent"
    assert s.model == "auto"  # CONTRACT: the English model for English, the multilingual one for the rest
    assert s.metrics_port == 9108


def test_precedence_flag_env_toml_default(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(
        tmp_path,
        'kafka_group = "toml"\nkafka_bootstrap = "toml:1"\nmetrics_port = 1111\n[detect]\nfalse_alarm_budget = 0.01\n',
    )
    monkeypatch.setenv("FINSENT_KAFKA_BOOTSTRAP", "env:2")
    monkeypatch.setenv("FINSENT_METRICS_PORT", "2222")
    monkeypatch.setenv("FINSENT_DETECT__MIN_NEGATIVE", "5")
    s = load_settings(cfg, metrics_port=3333)
    assert s.kafka_group == "toml"  # TOML over default
    assert s.kafka_bootstrap == "env:2"  # env over TOML
    assert s.metrics_port == 3333  # flag over env
    assert s.detect.false_alarm_budget == 0.01 and s.detect.min_negative == 5  # nested sections merge
    assert s.detect.window_minutes == 15  # untouched default


def test_config_path_from_env(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write(tmp_path, 'kafka_group = "viaenv"\n')
    monkeypatch.setenv("FINSENT_CONFIG", str(cfg))
    assert load_settings().kafka_group == "viaenv"


def test_topics_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FINSENT_KAFKA_TOPICS", " news , wires,")
    assert load_settings().kafka_topics == ("news", "wires")


def test_settings_are_frozen() -> None:
    s = load_settings()
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        s.kafka_group = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("FINSENT_METRICS_PORT", "abc", "metrics_port (FINSENT_METRICS_PORT)"),
        ("FINSENT_METRICS_PORT", "70000", "less than or equal to 65535"),
        ("FINSENT_DATABASE_URL", "mysql://x/y", "use sqlite or postgresql"),
        ("FINSENT_DATABASE_URL", "not a url", "not a database URL"),
        ("FINSENT_KAFKA_TOPICS", ",", "at least one topic"),
        ("FINSENT_DEVICE", "tpu", "device"),
    ],
)
def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, env: str, value: str, needle: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as ei:
        load_settings()
    assert needle in str(ei.value)


def test_unknown_toml_key_and_bad_toml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(write(tmp_path, "kafka_grop = 'x'\n"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "kafka_group = \n"))
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_channels_secrets_masked_and_env_resolved(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_URL", "https://hooks.slack.com/services/T000/B000/supersecrettoken")
    cfg = write(
        tmp_path,
        '[[channels]]\nname = "desk"\ntype = "slack"\nurl_env = "HOOK_URL"\nsecret = "s3cr3t-value"\n'
        '[[routes]]\nchannels = ["desk"]\nkey_kind = "entity"\n'
        '[[entities]]\nsymbol = "aapl"\naliases = ["Apple"]\n',
    )
    s = load_settings(cfg, database_url="postgresql://u:dbpass@h/db")
    assert s.channels[0].url is not None and "supersecrettoken" in s.channels[0].url.get_secret_value()
    dumped = repr(s) + str(s.redacted())
    for secret in ("supersecrettoken", "s3cr3t-value", "dbpass"):
        assert secret not in dumped
    assert s.entities[0].symbol == "AAPL"


def test_channel_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="url_env"):
        load_settings(write(tmp_path, '[[channels]]\nname = "a"\ntype = "webhook"\nurl_env = "NOPE_NOT_SET"\n'))
    with pytest.raises(ConfigError, match="type"):
        load_settings(write(tmp_path, '[[channels]]\nname = "a"\ntype = "pager"\nurl = "http://x"\n'))
    with pytest.raises(ConfigError, match="unknown channel"):
        load_settings(
            write(
                tmp_path, '[[channels]]\nname = "a"\ntype = "webhook"\nurl = "http://x"\n[[routes]]\nchannels = ["b"]\n'
            )
        )


def test_the_composition_root_builds_every_part_on_one_engine(tmp_path) -> None:
    """`monitor.app.wiring.build` is the one place that turns settings into parts: they share
    the engine, and the alerting policy and router come from the same settings."""
    from monitor.app.wiring import build

    s = load_settings(
        database_url=f"sqlite:///{tmp_path}/w.db",
        channels=[{"name": "desk", "type": "webhook", "url": "http://127.0.0.1:9/h"}],
        routes=[{"channels": ["desk"], "key_kind": "entity"}],
        alerting={"group_wait_seconds": 7, "inhibit_topic_by_entity": True},
    )
    parts = build(s)
    try:
        assert parts.store.engine is parts.engine is parts.detector.engine is parts.sender.engine
        assert parts.alerting.bind is parts.engine
        assert parts.alerting.policy.router is parts.router
        assert parts.router.channels({"key_kind": "entity", "key_value": "AAPL"}) == ["desk"]
        assert parts.router.channels({"key_kind": "topic", "key_value": "Macro"}) == []
        assert parts.alerting.policy.timing.group_wait.total_seconds() == 7
        assert parts.alerting.policy.inhibit_topic_by_entity and parts.alerting.policy.channel_types == {
            "desk": "webhook"
        }
    finally:
        parts.engine.dispose()
