"""Schemathesis fuzzes every operation of the embedded runtime's OpenAPI schema, in process (ASGI), with
valid and invalid inputs; whatever it sends, no answer may be a 5xx.

Search needs an API key: the test issues one into the runtime's Postgres key store, as an operator would,
and sends it with every request. Searches are pointed at the key's tenant so they get past the 403 and
reach the index, which holds a few documents. (schemathesis.pytest.from_fixture would read better but
touches `Node._nodeid`, which pytest 9 no longer has; the test drives Hypothesis per operation instead.)
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from headwater.runtime.embedded import EmbeddedHeadwater
from headwater.runtime.embedded.http_app import create_app
from schemas import IngestDocument
from services.query.access import issue_key
from services.query.adapters.keys_postgres import PostgresKeyStore
from services.query.config import AccessSettings
from tests.e2e.conftest import RuntimeFactory

TENANT = "acme"
EXAMPLES_PER_OPERATION = 25  # per operation and mode: the run stays under two minutes on two cores


@pytest.fixture
def served(make_runtime: RuntimeFactory) -> tuple[EmbeddedHeadwater, dict[str, str]]:
    """A started runtime holding a few documents, and the headers of an API key for its tenant."""
    runtime = make_runtime()
    store = PostgresKeyStore(runtime.parts.connect)
    store.ensure_schema()
    key, token = issue_key(tenant=TENANT, acl_groups=["eng"], now=datetime.now(UTC))
    store.add(key)
    store.close()
    for n, text in enumerate(["Refunds for hardware take ten days.", "Paris office travel policy."]):
        runtime.intake.accept(IngestDocument(tenant=TENANT, document_id=f"doc-{n}", text=text))
    assert runtime.wait_idle(timeout=120)
    return runtime, {"Authorization": f"Bearer {token}"}


def test_no_operation_answers_with_a_server_error(served: tuple[EmbeddedHeadwater, dict[str, str]]) -> None:
    runtime, headers = served
    # A fuzzer sends far more than a client would: the rate limit would turn most requests into 429s.
    access = AccessSettings(rate_per_second=1e6, rate_burst=1_000_000)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(runtime, access=access))
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert {op.path for op in operations} >= {"/v1/documents", "/v1/search", "/healthz", "/readyz"}
    for operation in operations:
        _fuzz(operation, GenerationMode.POSITIVE, headers)
        if list(operation.iter_parameters()) or len(operation.body):  # else nothing can be invalid
            _fuzz(operation, GenerationMode.NEGATIVE, headers)


def _fuzz(operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, headers: dict[str, str]) -> None:
    """Valid (positive) or invalid (negative) requests to one operation; not one may answer 5xx."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def run(case: Case[Any]) -> None:
        if mode is GenerationMode.POSITIVE and case.path == "/v1/search" and isinstance(case.body, dict):
            # The key's tenant and groups, so valid searches get past the 403 and reach the index.
            case.body.update({"tenant": TENANT, "acl": ["eng"] if case.body.get("acl") else None})
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    run()
