"""Writes the fixed hostile files of tests/test_hostile_input.py and their manifest.

Run it from the repository root (``python tests/data/hostile/make_corpus.py``) after changing a
file's recipe; the files are committed so the corpus is the same on every machine. Keys say what
a row is: ``GOOD-*`` lands, ``BAD-<column>-*`` fails with a message naming its line and
``<column>``, ``DUP-*`` fails as a duplicate key, ``CASE-*`` differ only in case, ``GONE-*`` sit on lines a quote left open
swallows (the row that swallows them fails, and the upload deactivates nothing).
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

HERE = Path(__file__).parent
SUPPLIERS = ["supplier_code", "name", "abbreviated_name", "trade", "address", "city", "state_code",
             "country_code", "zip", "business_phone", "email_address", "website", "is_active", "notes",
             "updated_at"]
PROJECTS = ["project_number", "name", "address", "city", "state_code", "country_code", "zip", "start_date",
            "completion_date", "total_value", "active", "updated_at"]
STAMP = "2026-10-01T08:00:00Z"


def row(header: list[str], key: str, **cells: str) -> list[str]:
    values = {"name": f"Name of {key}", "updated_at": STAMP, "country_code": "US"} | cells
    return [key if i == 0 else values.get(column, "") for i, column in enumerate(header)]


def text(header: list[str], rows: list[list[str]], *, eol: str = "\n") -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator=eol).writerows([header, *rows])
    return out.getvalue()


def good(header: list[str], start: int, count: int, **cells: str) -> list[list[str]]:
    return [row(header, f"GOOD-{start + n:04d}", **cells) for n in range(count)]


def files() -> dict[str, tuple[bytes, str]]:
    """name → (bytes, template)."""
    s, p = SUPPLIERS, PROJECTS
    made: dict[str, tuple[bytes, str]] = {}
    # UTF-16 (Excel's "Unicode text"), BOM first: every row is text, non-ASCII names land.
    rows = good(s, 100, 6) + [row(s, "GOOD-0106", name="Łódź Café Ñandú"), row(s, "BAD-name-1", name="")]
    made["suppliers-utf16.csv"] = (text(s, rows, eol="\r\n").encode("utf-16"), "suppliers")
    # Windows-1252: the ASCII rows land, the rows with accents fail on their cell.
    rows = good(s, 200, 5) + [row(s, "BAD-name-2", name="Café “Ace”"), row(s, "BAD-city-1", city="Montréal")]
    made["suppliers-cp1252.csv"] = (text(s, rows, eol="\r\n").encode("cp1252"), "suppliers")
    # A UTF-8 BOM and every kind of line end in one file, plus a quoted cell over two lines.
    lines = text(s, good(s, 300, 9, notes="two\nlines") + [row(s, "BAD-country_code-1", country_code="USA")]).split("\n")
    mixed, eols = [], ["\r\n", "\n", "\r"]
    for n, line in enumerate(lines[:-1]):
        mixed.append(line + (eols[n % 3] if not line.endswith("two") else "\n"))
    made["suppliers-bom-mixed-eol.csv"] = (("\ufeff" + "".join(mixed)).encode("utf-8"), "suppliers")
    # NUL bytes: a sign of a binary or half-written file; the cells that have one fail their row.
    rows = good(s, 400, 5) + [row(s, "BAD-name-3", name="Ace\x00Supply"), row(s, "BAD-notes-1", notes="\x00" * 4)]
    made["suppliers-nul.csv"] = (text(s, rows).encode("utf-8"), "suppliers")
    # A cell over Python's csv field limit (128 KiB).
    rows = good(s, 500, 3) + [row(s, "BAD-notes-2", notes="x" * (140 * 1024))] + good(s, 503, 3)
    made["suppliers-big-cell.csv"] = (text(s, rows).encode("utf-8"), "suppliers")
    # Duplicate, extra and missing columns: `name` twice, `fax` unknown, `website` absent.
    header = [c for c in s if c != "website"]
    header.insert(2, "name")
    header.insert(5, "fax")
    rows = []
    for n in range(6):
        values = dict(zip(s, row(s, f"GOOD-{600 + n:04d}")), fax="555-0100")
        rows.append([values[c] for c in header])
    values = dict(zip(s, row(s, "BAD-name-4")), fax="")
    rows.append([values[c] if i != 2 else "Another name" for i, c in enumerate(header)])
    made["suppliers-columns.csv"] = (text(header, rows).encode("utf-8"), "suppliers")
    # Keys: a trailing space makes a duplicate; keys that differ only in case.
    rows = good(s, 700, 3) + [row(s, "DUP-1 "), row(s, "DUP-1"), row(s, "CASE-a"), row(s, "CASE-A")]
    made["suppliers-keys.csv"] = (text(s, rows).encode("utf-8"), "suppliers")
    # A quote left open in a large file, in the last column: it swallows every line after it.
    rows = good(s, 1000, 300)
    broken = row(s, "BAD-updated_at-1")
    tail = good(s, 0, 2500)  # past the 128 KiB field limit once swallowed
    body = text(s, rows) + ",".join(broken[:-1]) + ',"' + STAMP + "\n"
    body += text(s, [[f"GONE-{r[0][5:]}", *r[1:]] for r in tail]).split("\n", 1)[1]
    made["suppliers-open-quote-large.csv"] = (body.encode("utf-8"), "suppliers")
    # Numbers and dates as ERPs and spreadsheets write them.
    rows = [
        row(p, "GOOD-P1", start_date="2026-01-05", completion_date="2026-12-31", total_value="1234.50"),
        row(p, "GOOD-P2", total_value="-0"),
        row(p, "GOOD-P3", total_value="1E+2"),
        row(p, "GOOD-P4", total_value=" 99999999.99 "),
        row(p, "GOOD-P5", start_date="2026-03-01T00:00:00"),
    ]
    for n, value in enumerate(["1E+27", "NaN", "inf", "-Infinity", "1,234.50", "1_000", "$5", "1e400", "١٢٣"]):
        rows.append(row(p, f"BAD-total_value-{n}", total_value=value))
    for n, value in enumerate(["12/31/2026", "31.12.2026", "2026-02-30", "1767225600", "45000", "Dec 31 2026"]):
        rows.append(row(p, f"BAD-start_date-{n}", start_date=value))
    rows += [row(p, "BAD-active-1", active="maybe"), row(p, "BAD-updated_at-2", updated_at="yesterday")]
    made["projects-numbers-dates.csv"] = (text(p, rows).encode("utf-8"), "projects")
    return made


def bad_lines(data: bytes) -> dict[str, int]:
    """Where each ``BAD-`` row starts: its line, counting every kind of line end."""
    decoded = data.decode("utf-16") if data[:2] == b"\xff\xfe" else data.decode("utf-8", "replace")
    found = {}
    for match in re.finditer(r"(?:^|\r\n|\r|\n)(BAD-[^,]*)", decoded):
        found[match.group(1)] = len(re.findall(r"\r\n|\r|\n", decoded[: match.start(1)])) + 1
    return found


def main() -> None:
    manifest = {}
    for name, (data, template) in files().items():
        (HERE / name).write_bytes(data)
        manifest[name] = {"template": template, "bad": bad_lines(data)}
    (HERE / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


if __name__ == "__main__":
    main()
