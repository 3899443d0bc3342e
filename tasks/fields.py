"""Field helpers for entity mappings: clean text, fit it to Procore's limits, check codes.

They are small pure functions that entity modules compose; a problem that stops a record raises
``InvalidRecord`` naming the field, one that only changes a value appends a warning.
"""

from __future__ import annotations

import re
import unicodedata

from procore_sync.errors import InvalidRecord
from procore_sync.iso3166 import COUNTRY_CODES, SUBDIVISION_CODES

# Zero-width and other invisible characters that ERP exports carry and Procore would keep.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_SPACES = re.compile(r"\s+")
# Procore documents no limit for descriptions; 1,000 characters keeps them readable in its UI.
DESCRIPTION_MAX = 1000
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def clean_text(value: str | None) -> str | None:
    """NFC-normalise, drop invisible and control characters, fold runs of white space."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", value).translate(_INVISIBLE)
    text = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in text)
    text = _SPACES.sub(" ", text).strip()
    return text or None


def required(value: str | None, field: str) -> str:
    if not value:
        raise InvalidRecord(f"{field} is blank; Procore requires it")
    return value


def at_most(value: str | None, field: str, limit: int) -> str | None:
    """A value that must not be cut (a name, a code): too long stops the record."""
    if value is not None and len(value) > limit:
        raise InvalidRecord(
            f"{field} is {len(value)} characters long; Procore allows at most {limit}"
        )
    return value


def truncated(value: str | None, field: str, limit: int, warnings: list[str]) -> str | None:
    """A value that may be cut (notes, an address line): cut it and say so."""
    if value is not None and len(value) > limit:
        warnings.append(f"{field} truncated from {len(value)} to Procore's limit of {limit} characters")
        return value[:limit]
    return value


def country_code(value: str | None, field: str = "country_code") -> str | None:
    if value is None:
        return None
    code = value.upper()
    if code not in COUNTRY_CODES:
        raise InvalidRecord(f"{field} {value!r} is not an ISO-3166 alpha-2 country code (e.g. US, CA)")
    return code


def state_code(value: str | None, country: str | None, field: str = "state_code") -> str | None:
    if value is None:
        return None
    code = value.upper()
    known = SUBDIVISION_CODES.get(country or "")
    if known is not None and code not in known:
        raise InvalidRecord(f"{field} {value!r} is not a state or province of {country} (ISO-3166-2)")
    return code


def email(value: str | None, field: str, warnings: list[str]) -> str | None:
    if value is not None and not _EMAIL.match(value):
        warnings.append(f"{field} {value!r} is not an e-mail address; left empty in Procore")
        return None
    return value
