"""How contracts travel on Kafka: key = partition key of the document, value = the contract's JSON.

Headers carry what is about the delivery rather than the document: when intake acknowledged the
change (so freshness can be measured at the far end) and where a redriven or replayed copy came from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from schemas.common import partition_key

ACCEPTED_AT = "headwater-accepted-at"  # epoch ms at which intake acknowledged the change
STAGE = "headwater-stage"
ERROR_TYPE = "headwater-error-type"
# Headers the pipeline hands on from a record to the records derived from it. The trace context
# (`traceparent`, `tracestate`) is not copied but replaced: each stage writes its own span of the record.
PROPAGATED = (ACCEPTED_AT,)


_Model = TypeVar("_Model", bound=BaseModel)


class PoisonMessage(ValueError):
    """The record cannot be decoded into the topic's contract; no retry will change that."""


def encode(message: BaseModel) -> tuple[bytes, bytes]:
    """(key, value) of a per-document contract."""
    tenant, document_id = getattr(message, "tenant", None), getattr(message, "document_id", None)
    if not isinstance(tenant, str) or not isinstance(document_id, str):
        raise TypeError(f"{type(message).__name__} has no tenant/document_id to key it by")
    return partition_key(tenant, document_id), message.model_dump_json().encode()


def decode(model: type[_Model], value: bytes | None) -> _Model:
    if value is None:
        raise PoisonMessage("empty value (a tombstone): deletes are change events with op='delete'")
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        # Name the fields and problems, never the values: they may be personal data.
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors())
        raise PoisonMessage(f"not a valid {model.__name__}: {problems[:1500]}") from None


def header_dict(headers: Iterable[tuple[str, bytes | None]]) -> dict[str, str]:
    """Kafka headers as text; a value that is not UTF-8 is kept readable rather than dropped."""
    return {key: (value or b"").decode("utf-8", errors="replace") for key, value in headers}


def header_list(headers: Mapping[str, str]) -> list[tuple[str, bytes]]:
    return [(key, value.encode()) for key, value in headers.items()]
