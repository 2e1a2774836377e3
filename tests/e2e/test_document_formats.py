"""Every supported document format, from `POST /v1/documents` to search: a fixture of each type is
ingested through the embedded runtime and found by a phrase only it contains (for the PDF a phrase of
page 2, for the DOCX a table cell); an empty or broken file is refused at intake with problem+json."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from headwater.runtime.embedded import EmbeddedHeadwater
from headwater.runtime.embedded.http_app import create_app
from services.ingest.formats import DOCX, PDF
from services.query.config import AccessSettings
from tests.e2e.conftest import RuntimeFactory
from tests.fixtures.documents.make_fixtures import make_pdf

FIXTURES = Path(__file__).parents[1] / "fixtures" / "documents"
# (fixture, content type, a phrase found in no other fixture)
DOCUMENTS = [
    ("sample.html", "text/html", "copper weathervane"),
    ("sample.md", "text/markdown", "glacier meltwater turbidity"),
    ("sample.txt", "text/plain", "orchard frost sensors"),
    ("sample.docx", DOCX, "tungsten filament spools"),  # a cell of its table
    ("sample.pdf", PDF, "basalt sediment cores"),  # on its second page
    ("sample.pdf", PDF, "northern spillway"),  # on its first page
]


@pytest.fixture
def runtime(make_runtime: RuntimeFactory) -> EmbeddedHeadwater:
    return make_runtime()


@pytest.fixture
def client(runtime: EmbeddedHeadwater) -> TestClient:
    return TestClient(create_app(runtime, access=AccessSettings(auth="disabled")))


def _document(name: str, content_type: str, data: bytes) -> dict[str, str]:
    return {
        "tenant": "acme",
        "document_id": name,
        "content_type": content_type,
        "data_base64": base64.b64encode(data).decode(),
    }


def test_every_format_is_searchable_by_a_phrase_of_its_own(
    client: TestClient, runtime: EmbeddedHeadwater
) -> None:
    for name, content_type in dict.fromkeys((name, ct) for name, ct, _ in DOCUMENTS):
        response = client.post(
            "/v1/documents", json=_document(name, content_type, (FIXTURES / name).read_bytes())
        )
        assert response.status_code == 202, response.text
    assert runtime.wait_idle(timeout=300)

    for name, _, phrase in DOCUMENTS:
        response = client.post("/v1/search", json={"query": phrase, "tenant": "acme", "top_k": 3})
        assert response.status_code == 200, response.text
        best = response.json()["hits"][0]
        assert best["document_id"] == name, (phrase, best)
        assert phrase in best["text"]
    assert runtime.journal.dead_letters() == []


def test_a_table_row_keeps_its_line_in_the_chunk_and_the_pdf_keeps_its_headings(
    client: TestClient, runtime: EmbeddedHeadwater
) -> None:
    for name, content_type in (("sample.docx", DOCX), ("sample.pdf", PDF)):
        document = _document(name, content_type, (FIXTURES / name).read_bytes())
        assert client.post("/v1/documents", json=document).status_code == 202
    assert runtime.wait_idle(timeout=300)

    def best_text(query: str) -> str:
        hits = client.post("/v1/search", json={"query": query, "tenant": "acme", "top_k": 1}).json()["hits"]
        return str(hits[0]["text"])

    assert "tungsten filament spools | 40 | 37" in best_text("tungsten filament spools").split("\n")
    assert "Sediment Findings" in best_text("basalt sediment cores")


def test_empty_and_broken_files_are_refused_with_problem_json(client: TestClient) -> None:
    cases = [
        (make_pdf([("", [])], page_numbers=False), PDF, 422),  # no text layer: never an empty document
        (b"%PDF-1.7\n" + b"\x00" * 200, PDF, 400),
        (b"PK\x03\x04 not a zip", DOCX, 400),
        ((FIXTURES / "sample.pdf").read_bytes(), DOCX, 400),
    ]
    for data, content_type, status in cases:
        response = client.post("/v1/documents", json=_document("bad", content_type, data))
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == status
