"""I18nService: catalogs from dicts and JSON files, placeholders, fallback locale, missing keys."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quvel_store.container import I18nService
from quvel_store.errors import I18nError

CATALOGS = {
    "en": {
        "auth": {"failed": "These credentials do not match our records.", "hello": "Hello, :name!"},
        "Welcome back, :name": "Welcome back, :name",
        "items": "{0} No items|{1} One item|[2,*] :count items",
        "apples": "apple|apples",
        "greet_brace": "Hi {name}, you have {count} messages",
        "only_en": "English only",
    },
    "fr": {"auth": {"hello": "Bonjour, :name !"}, "Welcome back, :name": "Bon retour, :name"},
}


def make(**kwargs: object) -> I18nService:
    return I18nService(catalogs=CATALOGS, **kwargs)  # type: ignore[arg-type]


def test_nested_keys_and_literal_sentence_keys() -> None:
    i18n = make()
    assert i18n.t("auth.failed") == "These credentials do not match our records."
    assert i18n.t("Welcome back, :name", name="Ada") == "Welcome back, Ada"


def test_laravel_placeholders_with_case_variants() -> None:
    i18n = I18nService(catalogs={"en": {"m": ":name / :Name / :NAME / :unknown / 10:30 / :names"}})
    assert i18n.t("m", name="ada", names="many") == "ada / Ada / ADA / :unknown / 10:30 / many"


def test_brace_placeholders() -> None:
    assert make().t("greet_brace", name="Ada", count=3) == "Hi Ada, you have 3 messages"
    assert make().t("greet_brace", name="Ada") == "Hi Ada, you have {count} messages"


def test_locale_switch_and_fallback() -> None:
    i18n = make(locale="fr")
    assert i18n.t("auth.hello", name="Ada") == "Bonjour, Ada !"
    assert i18n.t("only_en") == "English only"  # from the fallback locale
    assert i18n.translate("auth.hello", {"name": "Ada"}, locale="en") == "Hello, Ada!"
    assert i18n.translate("m", {"locale": "x"}) == "m"  # 'locale' can be a parameter name
    i18n.locale = "en"
    assert i18n.t("auth.hello", name="Ada") == "Hello, Ada!"
    assert i18n.has("only_en", "fr")
    assert not i18n.has("only_en", "fr", fallback=False)
    assert set(i18n.locales) == {"en", "fr"}


def test_missing_key_returns_the_key_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    i18n = make()
    with caplog.at_level(logging.WARNING, logger="quvel_store.container._i18n"):
        assert i18n.t("nope.missing") == "nope.missing"
        assert i18n.t("nope.missing") == "nope.missing"
    assert len([r for r in caplog.records if "nope.missing" in r.getMessage()]) == 1


def test_strict_mode_raises() -> None:
    with pytest.raises(I18nError, match="no translation for 'nope'"):
        make(strict=True).t("nope")


def test_no_fallback() -> None:
    i18n = make(locale="fr", fallback_locale=None)
    assert i18n.t("only_en") == "only_en"


@pytest.mark.parametrize(
    ("count", "expected"), [(0, "No items"), (1, "One item"), (2, "2 items"), (40, "40 items")]
)
def test_choice_with_ranges(count: int, expected: str) -> None:
    assert make().choice("items", count) == expected


def test_choice_simple_plural() -> None:
    assert make().choice("apples", 1) == "apple"
    assert make().choice("apples", 3) == "apples"


def test_observe_locale() -> None:
    seen: list[str] = []
    i18n = make()
    i18n.observe_locale().subscribe(seen.append)
    i18n.set_locale("fr")
    i18n.set_locale("fr")
    i18n.set_locale("en")
    assert seen == ["en", "fr", "en"]


def test_load_json_file_and_directory(tmp_path: Path) -> None:
    (tmp_path / "de.json").write_text(json.dumps({"Hello": "Hallo"}), encoding="utf-8")
    (tmp_path / "de").mkdir()
    (tmp_path / "de" / "auth.json").write_text(json.dumps({"failed": "Falsch"}), encoding="utf-8")
    (tmp_path / "de" / "admin").mkdir()
    (tmp_path / "de" / "admin" / "users.json").write_text(json.dumps({"title": "Benutzer"}), encoding="utf-8")
    i18n = I18nService(locale="de")
    i18n.load_directory(tmp_path)
    assert i18n.t("Hello") == "Hallo"
    assert i18n.t("auth.failed") == "Falsch"
    assert i18n.t("admin.users.title") == "Benutzer"
    single = I18nService(locale="es")
    single.load_json(tmp_path / "de.json", locale="es")
    assert single.t("Hello") == "Hallo"


def test_bad_files_and_catalogs_raise_and_keep_what_was_loaded(tmp_path: Path) -> None:
    i18n = make()
    bad_json = tmp_path / "en.json"
    bad_json.write_text("{not json", encoding="utf-8")
    with pytest.raises(I18nError, match="not valid JSON"):
        i18n.load_json(bad_json)
    array = tmp_path / "xx.json"
    array.write_text("[1]", encoding="utf-8")
    with pytest.raises(I18nError, match="JSON object"):
        i18n.load_json(array)
    with pytest.raises(I18nError, match="cannot read"):
        i18n.load_json(tmp_path / "missing.json")
    with pytest.raises(I18nError, match="not a directory"):
        i18n.load_directory(tmp_path / "missing")
    with pytest.raises(I18nError, match=r"'auth\.bad'"):
        i18n.add_catalog("en", {"auth": {"failed": "changed", "bad": 3}})
    with pytest.raises(I18nError, match="mapping"):
        i18n.add_catalog("en", ["x"])  # type: ignore[arg-type]
    with pytest.raises(I18nError, match="locale"):
        i18n.set_locale("")
    assert i18n.t("auth.failed") == "These credentials do not match our records."
    assert i18n.locale == "en"


@settings(max_examples=200, deadline=None)
@given(
    message=st.text(alphabet=st.sampled_from(list("ab :{}|[]*,0129-x")), max_size=40),
    count=st.integers(min_value=-5, max_value=50),
    value=st.text(max_size=5),
)
def test_any_message_translates_without_raising(message: str, count: int, value: str) -> None:
    """Catalog text is data: whatever it holds, t() and choice() return a string and never raise."""
    i18n = I18nService(catalogs={"en": {"k": message}})
    assert isinstance(i18n.t("k", x=value, a=value), str)
    assert isinstance(i18n.choice("k", count, x=value), str)
