"""Translations: per-locale catalogs from dicts or JSON files, ``t(key, **params)``, a fallback locale.

Keys are dotted paths into nested catalogs (``"auth.failed"``) or literal keys (Laravel's JSON catalogs use
whole sentences as keys). Parameters use Laravel's ``:name`` (with ``:Name`` / ``:NAME`` case variants)
or ``{name}``. A key found in neither the current nor the fallback locale returns the key itself (as
Laravel's ``__()`` does) and is logged once at WARNING; ``strict=True`` raises :class:`I18nError` instead.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import reactivex
from reactivex.subject import BehaviorSubject

from quvel_store.errors import I18nError

__all__ = ["I18nService"]

logger = logging.getLogger(__name__)

_PLACEHOLDER = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RANGE = re.compile(r"^\s*(\{(-?\d+)\}|\[(-?\d+|\*)\s*,\s*(-?\d+|\*)\])\s*(.*)$", re.DOTALL)


class I18nService:
    """Catalogs per locale and the current locale; ``observe_locale()`` emits on every change."""

    def __init__(
        self,
        locale: str = "en",
        fallback_locale: str | None = "en",
        catalogs: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        strict: bool = False,
    ) -> None:
        _check_locale(locale)
        if fallback_locale is not None:
            _check_locale(fallback_locale)
        self._catalogs: dict[str, dict[str, str]] = {}
        self._fallback = fallback_locale
        self._strict = strict
        self._reported: set[tuple[str, str]] = set()
        self._locale = BehaviorSubject(locale)
        for name, messages in (catalogs or {}).items():
            self.add_catalog(name, messages)

    # Locale -------------------------------------------------------------------------------------------------

    @property
    def locale(self) -> str:
        return self._locale.value

    @locale.setter
    def locale(self, locale: str) -> None:
        self.set_locale(locale)

    @property
    def fallback_locale(self) -> str | None:
        return self._fallback

    def set_locale(self, locale: str) -> None:
        """Switch the current locale (any string; missing keys fall back); observers see the change."""
        _check_locale(locale)
        if locale != self._locale.value:
            self._locale.on_next(locale)

    def observe_locale(self) -> reactivex.Observable[str]:
        """The current locale now and after every change (a UI re-renders its texts on each)."""
        return self._locale

    @property
    def locales(self) -> tuple[str, ...]:
        """Locales that have a catalog."""
        return tuple(self._catalogs)

    # Catalogs -----------------------------------------------------------------------------------------------

    def add_catalog(self, locale: str, messages: Mapping[str, Any], *, prefix: str = "") -> None:
        """Merge ``messages`` (nested mappings of strings) into ``locale``'s catalog; later keys win.

        Nothing is merged when any value is invalid (every value must be a string or a mapping).
        """
        _check_locale(locale)
        if not isinstance(messages, Mapping):
            raise I18nError(f"a catalog must be a mapping of keys to strings, got {type(messages).__name__}")
        flat: dict[str, str] = {}
        _flatten(messages, prefix, flat, locale)
        self._catalogs.setdefault(locale, {}).update(flat)
        self._reported.clear()

    def load_json(self, path: str | Path, locale: str | None = None, *, prefix: str = "") -> None:
        """Load one JSON catalog; the locale defaults to the file's stem (``lang/fr.json`` -> ``fr``)."""
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise I18nError(f"cannot read translation file {file}: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise I18nError(f"translation file {file} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise I18nError(f"translation file {file} must hold a JSON object, got {type(data).__name__}")
        self.add_catalog(locale or file.stem, data, prefix=prefix)

    def load_directory(self, path: str | Path) -> None:
        """Load a Laravel-like ``lang`` directory: ``<locale>.json`` files (keys as written) and
        ``<locale>/<group>.json`` files (keys prefixed ``group.``, like ``lang/en/auth.php``)."""
        root = Path(path)
        if not root.is_dir():
            raise I18nError(f"translation directory {root} does not exist or is not a directory")
        for file in sorted(root.glob("*.json")):
            self.load_json(file)
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            for file in sorted(folder.rglob("*.json")):
                group = ".".join(file.relative_to(folder).with_suffix("").parts)
                self.load_json(file, locale=folder.name, prefix=group)

    # Lookup -------------------------------------------------------------------------------------------------

    def has(self, key: str, locale: str | None = None, *, fallback: bool = True) -> bool:
        """Whether ``key`` translates in ``locale`` (default: current), counting the fallback locale."""
        return self._lookup(key, locale or self.locale, fallback) is not None

    def t(self, key: str, /, **params: Any) -> str:
        """Translate ``key`` in the current locale and fill ``:param`` / ``{param}`` placeholders."""
        return self.translate(key, params)

    def translate(
        self, key: str, params: Mapping[str, Any] | None = None, *, locale: str | None = None
    ) -> str:
        """:meth:`t` with an explicit ``locale`` (and params as a mapping, so ``locale`` can be a param)."""
        locale = locale or self.locale
        message = self._lookup(key, locale, True)
        if message is None:
            message = self._missing(key, locale)
        return _fill(message, params or {})

    def choice(self, key: str, count: int, /, **params: Any) -> str:
        """Pluralize like Laravel's ``trans_choice``: ``"apple|apples"`` or
        ``"{0} none|[1,19] some|[20,*] many"``; ``:count`` is filled in."""
        locale = self.locale
        message = self._lookup(key, locale, True)
        if message is None:
            message = self._missing(key, locale)
        return _fill(_pick_plural(message, count), {"count": count, **params})

    def _lookup(self, key: str, locale: str, fallback: bool) -> str | None:
        found = self._catalogs.get(locale, {}).get(key)
        if found is None and fallback and self._fallback is not None and self._fallback != locale:
            found = self._catalogs.get(self._fallback, {}).get(key)
        return found

    def _missing(self, key: str, locale: str) -> str:
        if self._strict:
            raise I18nError(
                f"no translation for {key!r} in locale {locale!r} (fallback {self._fallback!r}); "
                f"add it with i18n.add_catalog({locale!r}, {{...}})"
            )
        if (locale, key) not in self._reported:
            self._reported.add((locale, key))
            logger.warning("missing translation %r for locale %r", key, locale)
        return key

    def dispose(self) -> None:
        """Complete the locale Observable."""
        self._locale.on_completed()

    def shutdown(self) -> None:
        """Container hook: complete the locale Observable."""
        self.dispose()


def _check_locale(locale: object) -> None:
    if not isinstance(locale, str) or not locale:
        raise I18nError(f"a locale must be a non-empty string like 'en' or 'pt_BR', got {locale!r}")


def _flatten(messages: Mapping[str, Any], prefix: str, out: dict[str, str], locale: str) -> None:
    for key, value in messages.items():
        if not isinstance(key, str):
            raise I18nError(f"catalog {locale!r}: keys must be strings, got {key!r}")
        full = f"{prefix}.{key}" if prefix else key
        if isinstance(value, Mapping):
            _flatten(value, full, out, locale)
        elif isinstance(value, str):
            out[full] = value
        else:
            raise I18nError(
                f"catalog {locale!r}: the value of {full!r} must be a string or a nested mapping, "
                f"got {type(value).__name__}"
            )


def _fill(message: str, params: Mapping[str, Any]) -> str:
    if not params:
        return message

    def replace(match: re.Match[str]) -> str:
        colon, brace = match.group(1), match.group(2)
        name = colon or brace
        if name in params:
            return str(params[name])
        if colon:  # Laravel: :NAME -> upper-cased value, :Name -> first letter upper-cased
            lower = name.lower()
            if name.isupper() and lower in params:
                return str(params[lower]).upper()
            lcfirst = name[0].lower() + name[1:]
            if name[0].isupper() and lcfirst in params:
                value = str(params[lcfirst])
                return value[:1].upper() + value[1:]
        return match.group(0)

    return _PLACEHOLDER.sub(replace, message)


def _pick_plural(message: str, count: int) -> str:
    parts = message.split("|")
    plain: list[str] = []
    for part in parts:
        match = _RANGE.match(part)
        if match is None:
            plain.append(part.strip())
            continue
        exact, low, high, text = match.group(2), match.group(3), match.group(4), match.group(5)
        if exact is not None and count == int(exact):
            return text.strip()
        if exact is None:
            above = low == "*" or count >= int(low)
            below = high == "*" or count <= int(high)
            if above and below:
                return text.strip()
        plain.append(text.strip())
    if len(plain) == 1:
        return plain[0]
    return plain[0] if count == 1 else plain[1]
