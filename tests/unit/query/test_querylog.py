"""The search log masks identifiers in the query and never writes the raw text."""

from __future__ import annotations

import logging

import pytest

from schemas import SearchPage, SearchRequest
from services.query.access import Caller
from services.query.querylog import log_refusal, log_search

CANARIES = {  # identifiers a search log must never show, in any form
    "jane.canary+q@example.co.uk": "<EMAIL>",
    "+1 (415) 555-0199": "<NUMBER>",
    "020 7946 0958": "<NUMBER>",
    "4111 1111 1111 1111": "<NUMBER>",
    "4111-1111-1111-1111": "<NUMBER>",
    "123-45-6789": "<NUMBER>",
    "GB29 NWBK 6016 1331 9268 19": "<IBAN>",
    "DE89370400440532013000": "<IBAN>",
    "192.168.14.7": "<IP>",
    "2001:db8:85a3::8a2e:370:7334": "<IP>",
}


def test_a_search_is_logged_with_its_caller_and_outcome_but_never_the_raw_query(
    caplog: pytest.LogCaptureFixture,
) -> None:
    query = "orders of " + " and ".join(CANARIES)
    request = SearchRequest(query=query, tenant="acme")
    page = SearchPage(query=query, mode=request.mode, hits=[], took_ms=12.34)

    with caplog.at_level(logging.INFO, logger="headwater.query"):
        log_search(caller=Caller("0123456789abcdef", "acme", ()), request=request, page=page)
        log_refusal(status=401, reason="invalid or revoked API key", key_id="0123456789abcdef")

    logged = caplog.text
    assert (
        f"key=0123456789abcdef tenant=acme mode=hybrid hits=0 took_ms=12.3 query_chars={len(query)}" in logged
    )
    assert "orders of" not in logged  # not even the words around the identifiers: they may be names
    assert "status=401" in logged
    for value in CANARIES:
        assert value not in logged
    assert "1111" not in logged and "555" not in logged and "example.co.uk" not in logged
