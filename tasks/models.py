"""Base models for entity modules: tolerant reading, strict writing (STYLE point 7).

``ErpRow`` reads what an ERP exports: unknown columns are ignored, blank strings are missing
values, numbers where text is expected are text, and numbers, dates and timestamps are read
strictly (``tasks/erp_values.py``): exactly, or the row fails saying how to write them.
``ProcoreModel`` is what we send: a field Procore does not know is an error here, before any call.
"""

from __future__ import annotations

from decimal import Decimal

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


def number(value: Decimal | None) -> float | None:
    return None if value is None else float(value)
