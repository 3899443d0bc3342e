"""The vendors mapping and the generic row mapping: pure functions, no I/O."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from connectors.erp import SourceRow
from flows.vendors import VENDORS, ErpSupplier, ProcoreVendor, map_supplier
from procore_sync.errors import InvalidRecord
from tasks.mapping import map_rows

GOOD = {
    "supplier_code": "S-00001",
    "name": "Summit Concrete Supply",
    "address": "12 Quarry Road",
    "city": "Denver",
    "state_code": "co",
    "country_code": "us",
    "zip": "80202",
    "business_phone": "+1 303 555 0100",
    "email_address": "ap@summit.example",
    "is_active": "true",
    "updated_at": datetime(2026, 11, 1, tzinfo=UTC),
}


def mapped(**changes: object) -> ProcoreVendor:
    result = map_supplier(ErpSupplier.model_validate(GOOD | changes))
    return result.payload  # type: ignore[return-value]


def test_good_supplier_maps_to_a_strict_vendor() -> None:
    vendor = mapped()
    assert vendor.name == "Summit Concrete Supply"
    assert (vendor.state_code, vendor.country_code) == ("CO", "US")
    assert vendor.origin_code == "S-00001"
    assert vendor.is_active is True


@pytest.mark.parametrize(
    ("changes", "names"),
    [
        ({"name": "   "}, "name is blank"),
        ({"name": "x" * 300}, "name is 300 characters long; Procore allows at most 255"),
        ({"country_code": "USA"}, "country_code 'USA' is not an ISO-3166 alpha-2"),
        ({"state_code": "ZZ"}, "state_code 'ZZ' is not a state or province of US"),
    ],
)
def test_bad_supplier_is_refused_naming_field_and_problem(changes: dict, names: str) -> None:
    with pytest.raises(InvalidRecord, match=names):
        mapped(**changes)


def test_long_notes_are_truncated_with_a_warning() -> None:
    result = map_supplier(ErpSupplier.model_validate(GOOD | {"notes": "n" * 10_050}))
    assert len(result.payload.notes) == 10_000  # type: ignore[attr-defined]
    assert result.warnings == ["notes truncated from 10050 to Procore's limit of 10000 characters"]


def test_odd_unicode_is_normalised_not_refused() -> None:
    vendor = mapped(name="Ca\u0301rdenas\u200b\u00a0Steel  \u202eLtd")
    assert vendor.name == "Cárdenas Steel Ltd"


def test_a_bad_email_is_dropped_with_a_warning() -> None:
    result = map_supplier(ErpSupplier.model_validate(GOOD | {"email_address": "not-an-email"}))
    assert result.payload.email_address is None  # type: ignore[attr-defined]
    assert "not an e-mail address" in result.warnings[0]


def test_outgoing_model_forbids_fields_procore_does_not_know() -> None:
    with pytest.raises(ValidationError):
        ProcoreVendor(name="A", origin_code="S-1", trade="Concrete")  # type: ignore[call-arg]


def rows(*datas: dict) -> list[SourceRow]:
    return [SourceRow(data=d, line=i + 2) for i, d in enumerate(datas)]


def test_map_rows_adds_origin_id_and_hashes_the_payload() -> None:
    [record] = map_rows(VENDORS, rows(GOOD))
    assert record.ok and record.payload is not None
    assert record.payload["origin_id"] == "S-00001"
    assert record.payload_hash and len(record.payload_hash) == 64
    assert record.source_updated_at == GOOD["updated_at"]


def test_map_rows_never_raises_and_names_the_record() -> None:
    records = map_rows(VENDORS, rows(GOOD, GOOD | {"supplier_code": "S-2", "country_code": "XX"}))
    assert [r.ok for r in records] == [True, False]
    assert "country_code 'XX'" in (records[1].error or "")


def test_duplicate_keys_fail_every_row_sharing_the_key() -> None:
    records = map_rows(VENDORS, rows(GOOD, GOOD | {"name": "Other name"}))
    assert len(records) == 1
    assert records[0].error == (
        "duplicate supplier_code S-00001: the ERP has it on lines 2, 3; "
        "make the key unique in the ERP, then resync"
    )


def test_a_row_without_key_is_reported_not_dropped() -> None:
    [record] = map_rows(VENDORS, rows(GOOD | {"supplier_code": " "}))
    assert record.key == "(no supplier_code, row 2)"
    assert record.error == "supplier_code is blank"


def test_unparsable_erp_value_is_a_record_error() -> None:
    [record] = map_rows(VENDORS, rows(GOOD | {"updated_at": "yesterday-ish"}))
    assert not record.ok and "updated_at" in (record.error or "")
