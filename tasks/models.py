"""Base models for entity modules: tolerant reading, strict writing (STYLE point 7).

``ErpRow`` reads what an ERP exports: unknown columns are ignored, blank strings are missing
values, numbers where text is expected are text, and numbers, dates and timestamps are read
strictly (``tasks/erp_values.py``): exactly, or the row fails saying how to write them (an amount
with more digits than Procore's JSON numbers hold fails its record). ``ProcoreModel`` is what we
send: a field Procore does not know is an error here, before any call.

Money is ``Decimal`` from the ERP to the request body, never ``float``. ``payload_of`` keeps the
``Decimal``s in the payload (pydantic's JSON mode would make them strings, where Procore's schema
says number), and the client writes them as exact JSON numbers, digit for digit as the ERP has them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from tasks.erp_values import erp_value


class ErpRow(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_missing(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return erp_value(value, cls.model_fields[info.field_name].annotation)  # type: ignore[index]


class ProcoreModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


def money(value: Decimal | None) -> str | None:
    """Procore's commitment and contract lines take amounts as decimal strings."""
    return None if value is None else format(value.quantize(Decimal("0.01")), "f")


def payload_of(model: BaseModel) -> dict[str, Any]:
    """What is sent: the model as JSON values (dates as text...), its ``Decimal``s kept exact."""
    as_json = model.model_dump(mode="json", exclude_none=True)
    return _decimals_back(as_json, model.model_dump(mode="python", exclude_none=True))


def _decimals_back(as_json: Any, as_python: Any) -> Any:
    """Both dumps have one shape; where the Python one holds a ``Decimal``, take it."""
    if isinstance(as_python, Decimal):
        return as_python
    if isinstance(as_json, dict):
        return {name: _decimals_back(value, as_python[name]) for name, value in as_json.items()}
    if isinstance(as_json, list):
        return [_decimals_back(j, p) for j, p in zip(as_json, as_python, strict=True)]
    return as_json
