"""ISO-3166 checks the sandbox applies to vendor addresses.

Procore requires ``country_code`` to be an ISO-3166-1 alpha-2 code and ``state_code`` to be the
subdivision part of an ISO-3166-2 code ("CA" for California, not "Calif." or "US-CA"). The sandbox
checks subdivisions only for the United States and Canada; elsewhere any state code passes, as
Procore's own checks for other countries are not documented.

The code sets themselves live in ``procore_sync.iso3166`` (the 249 assigned alpha-2 codes from
the public-domain tzdata ``iso3166.tab``; the US's 50 states, DC and 6 outlying areas; Canada's
13 provinces and territories), shared with the mapping layer so the two cannot disagree.
"""

from __future__ import annotations

from procore_sync.iso3166 import CA_PROVINCES, COUNTRY_CODES, SUBDIVISION_CODES, US_STATES

__all__ = ["CA_PROVINCES", "COUNTRY_CODES", "SUBDIVISION_CODES", "US_STATES", "is_country", "is_subdivision"]


def is_country(code: str) -> bool:
    return code in COUNTRY_CODES


def is_subdivision(country_code: str, state_code: str) -> bool:
    """True when ``state_code`` is valid for the country, or the country's list is not checked."""
    known = SUBDIVISION_CODES.get(country_code)
    return known is None or state_code in known
