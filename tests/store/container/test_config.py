"""Config: defaults, QUVEL_* environment, dicts, keyword arguments, and typed errors for bad values."""

from __future__ import annotations

from typing import Any

import pytest

from quvel_store.container import Config
from quvel_store.errors import ConfigError, QuvelError


def test_defaults_without_any_source() -> None:
    config = Config(env=False)
    assert config.api_url is None
    assert config.ws_url is None
    assert config.ws_auth_endpoint == "/broadcasting/auth"
    assert config.ws_user_auth_endpoint == "/broadcasting/user-auth"
    assert config.locale == "en"
    assert config.fallback_locale == "en"
    assert config.server_rendering is False
    assert config.api_timeout == 10.0
    assert config.api_connect_timeout is None
    assert config.get("tenant_id") is None
    assert config.get("tenant_id", "default-tenant") == "default-tenant"
    assert config.source_of("locale") == "default"


def test_environment_variables() -> None:
    env = {
        "QUVEL_API_URL": "https://api.example.test",
        "QUVEL_TENANT_ID": "acme",
        "QUVEL_WS_URL": "wss://ws.example.test/app/key",
        "QUVEL_WS_AUTH_ENDPOINT": "/api/broadcasting/auth",
        "QUVEL_SERVER_RENDERING": "true",
        "QUVEL_API_TIMEOUT": "2.5",
        "QUVEL_FEATURE_FLAGS": "a,b",
        "OTHER_VAR": "ignored",
        "QUVEL_": "ignored too",
    }
    config = Config.from_env(env)
    assert config.api_url == "https://api.example.test"
    assert config.get("tenant_id") == "acme"
    assert config.tenant_id == "acme"
    assert config.ws_url == "wss://ws.example.test/app/key"
    assert config.ws_auth_endpoint == "/api/broadcasting/auth"
    assert config.server_rendering is True
    assert config.api_timeout == 2.5
    assert config.get("feature_flags") == "a,b"
    assert "other_var" not in config
    assert config.source_of("api_url") == "environment variable QUVEL_API_URL"


def test_real_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUVEL_WS_USER_AUTH_ENDPOINT", "/custom/user-auth")
    assert Config().ws_user_auth_endpoint == "/custom/user-auth"
    assert Config(env=False).ws_user_auth_endpoint == "/broadcasting/user-auth"


def test_precedence_env_then_mapping_then_keywords() -> None:
    env = {"QUVEL_LOCALE": "de", "QUVEL_TENANT_ID": "env-tenant", "QUVEL_FALLBACK_LOCALE": "it"}
    config = Config({"locale": "fr", "tenant_id": "dict-tenant"}, env=env, tenant_id="kw-tenant")
    assert config.locale == "fr"
    assert config.fallback_locale == "it"
    assert config.get("tenant_id") == "kw-tenant"
    assert config.source_of("tenant_id") == "a keyword argument"
    assert config.source_of("locale") == "the config mapping"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("yes", True), ("ON", True), ("0", False), ("off", False), ("", False), (True, True)],
)
def test_booleans(raw: Any, expected: bool) -> None:
    assert Config({"server_rendering": raw}, env=False).server_rendering is expected


@pytest.mark.parametrize("raw", [5, 2.5, "3", " 4.5 "])
def test_timeouts_accept_numbers(raw: Any) -> None:
    assert Config({"api_timeout": raw}, env=False).api_timeout == float(raw)


def test_non_numeric_timeout_from_env_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"QUVEL_API_TIMEOUT": "fast"})
    error = caught.value
    assert "QUVEL_API_TIMEOUT" in str(error)
    assert "'fast'" in str(error)
    assert "seconds" in str(error)
    assert error.key == "api_timeout"
    assert error.source == "environment variable QUVEL_API_TIMEOUT"
    assert isinstance(error, QuvelError)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"api_timeout": -1}, "positive number"),
        ({"api_timeout": 0}, "positive number"),
        ({"api_timeout": "nan"}, "positive number"),
        ({"api_timeout": "inf"}, "positive number"),
        ({"api_timeout": True}, "positive number"),
        ({"api_connect_timeout": [1]}, "positive number"),
        ({"server_rendering": "maybe"}, "boolean"),
        ({"server_rendering": 2}, "boolean"),
        ({"locale": ""}, "must not be empty"),
        ({"locale": 5}, "must be a string"),
        ({"api_url": 123}, "must be a string"),
    ],
)
def test_bad_values_raise_typed_errors(values: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Config(values, env=False)


def test_bad_mapping_and_keys() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        Config(["api_url"], env=False)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="non-empty strings"):
        Config({1: "x"}, env=False)  # type: ignore[dict-item]


def test_optional_settings_can_be_blanked() -> None:
    config = Config({"api_url": "", "api_connect_timeout": None}, env={"QUVEL_API_URL": "http://x"})
    assert config.api_url is None
    assert config.api_connect_timeout is None


def test_mapping_access() -> None:
    config = Config({"custom": {"nested": 1}}, env=False)
    assert config["custom"] == {"nested": 1}
    assert config["locale"] == "en"
    assert "custom" in config
    assert "api_url" not in config  # unset (None) counts as absent
    assert "custom" in list(config)
    assert config.as_dict()["custom"] == {"nested": 1}
    with pytest.raises(ConfigError, match="QUVEL_NOPE"):
        config["nope"]


def test_merged_is_a_new_config() -> None:
    base = Config({"tenant_id": "a"}, env={"QUVEL_API_URL": "http://api"})
    derived = base.merged({"tenant_id": "b"}, locale="pt_BR")
    assert base.get("tenant_id") == "a"
    assert derived.get("tenant_id") == "b"
    assert derived.locale == "pt_BR"
    assert derived.api_url == "http://api"
    assert derived.source_of("api_url") == "environment variable QUVEL_API_URL"
    assert derived.source_of("locale") == "a keyword argument"
    assert derived != base
    assert Config({"tenant_id": "a"}, env={"QUVEL_API_URL": "http://api"}) == base
    with pytest.raises(ConfigError):
        base.merged(api_timeout="soon")
    assert base.api_timeout == 10.0
