"""Intake to query through the embedded runtime: upserts, updates, deletes, fencing, isolation."""

from __future__ import annotations

from schemas import ChangeOp, IngestDocument, SearchMode, SearchRequest
from services.indexer.ports import IndexFilter
from tests.e2e.conftest import RuntimeFactory

POLICY = (
    "Refund policy. Customers may return hardware within thirty days for a full refund. "
    "Contact Maria Gonzalez at maria.gonzalez@example.com or call (415) 555-0142 for an exception."
)


def _doc(
    document_id: str, text: str, *, tenant: str = "acme", version: int = 1, **extra: object
) -> IngestDocument:
    return IngestDocument(tenant=tenant, document_id=document_id, text=text, version=version, **extra)  # type: ignore[arg-type]


def _search(
    runtime: object, query: str, *, tenant: str = "acme", mode: SearchMode = SearchMode.HYBRID, **kw: object
) -> list:
    page = runtime.query.search(SearchRequest(query=query, tenant=tenant, mode=mode, top_k=10, **kw))  # type: ignore[attr-defined]
    return page.hits


def _live_points(runtime: object, tenant: str = "acme") -> list:
    return runtime.parts.index.scroll(runtime.collection, filter=IndexFilter(tenant=tenant), limit=1000)  # type: ignore[attr-defined]


def test_a_document_becomes_searchable_in_every_mode_without_its_pii(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    accepted = runtime.intake.accept(_doc("policy-1", POLICY, metadata={"kind": "policy"}))
    assert accepted.version == 1
    assert runtime.wait_idle(timeout=60)
    for mode in SearchMode:
        hits = _search(runtime, "refund for returned hardware", mode=mode)
        assert hits and hits[0].document_id == "policy-1", mode
    hit = _search(runtime, "refund hardware")[0]
    assert set(hit.retrievers) == {"dense", "sparse"}
    assert hit.metadata == {"kind": "policy"}
    stored = " ".join(str(p.payload["text"]) for p in _live_points(runtime))
    for secret in ("Gonzalez", "maria.gonzalez@example.com", "555-0142"):
        assert secret not in stored
    assert runtime.stats()["pii"].get("EMAIL_ADDRESS") == 1


def test_an_update_replaces_the_old_version_and_a_delete_removes_it(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    runtime.intake.accept(_doc("note", "The quarterly offsite happens in spring this year.", version=1))
    runtime.wait_idle(timeout=60)
    runtime.intake.accept(
        _doc("note", "The quarterly offsite moved to autumn after the budget review.", version=2)
    )
    runtime.wait_idle(timeout=60)
    texts = [h.text for h in _search(runtime, "offsite", mode=SearchMode.SPARSE)]
    assert len(texts) == 1 and "autumn" in texts[0]
    assert _search(runtime, "spring", mode=SearchMode.SPARSE) == []
    assert all(p.payload["doc_version"] == 2 for p in _live_points(runtime))

    runtime.intake.accept(IngestDocument(tenant="acme", document_id="note", op=ChangeOp.DELETE, version=3))
    runtime.wait_idle(timeout=60)
    assert _search(runtime, "offsite autumn") == []
    assert _live_points(runtime) == []


def test_older_and_duplicate_versions_change_nothing(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    runtime.intake.accept(_doc("faq", "Passwords rotate every ninety days.", version=5))
    runtime.wait_idle(timeout=60)
    before = sorted((p.id, p.payload["doc_version"], p.payload["text"]) for p in _live_points(runtime))
    runtime.intake.accept(_doc("faq", "Passwords never rotate.", version=4))  # late, older
    runtime.intake.accept(_doc("faq", "Passwords rotate every ninety days.", version=5))  # duplicate
    runtime.wait_idle(timeout=60)
    after = sorted((p.id, p.payload["doc_version"], p.payload["text"]) for p in _live_points(runtime))
    assert after == before
    assert (
        _search(runtime, "never rotate", mode=SearchMode.SPARSE)[0].text
        == "Passwords rotate every ninety days."
    )


def test_a_query_never_returns_another_tenants_chunks(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    runtime.intake.accept(
        _doc("secret-plan", "Project Falcon launches the orbital widget in March.", tenant="acme")
    )
    runtime.intake.accept(_doc("other", "Globex sells garden hoses.", tenant="globex"))
    runtime.wait_idle(timeout=60)
    for mode in SearchMode:
        hits = _search(runtime, "Project Falcon orbital widget", tenant="globex", mode=mode)
        assert all(h.document_id == "other" for h in hits), mode
    assert _search(runtime, "Project Falcon", tenant="initech") == []


def test_acl_groups_restrict_what_a_caller_sees(make_runtime: RuntimeFactory) -> None:
    runtime = make_runtime()
    runtime.intake.accept(_doc("incident", "Incident review of the payroll outage.", acl=["security"]))
    runtime.intake.accept(_doc("handbook", "Payroll runs on the last business day."))
    runtime.wait_idle(timeout=60)
    visible = {h.document_id for h in _search(runtime, "payroll", acl=["engineering"])}
    assert visible == {"handbook"}
    assert {h.document_id for h in _search(runtime, "payroll", acl=["security"])} == {"handbook", "incident"}


def test_a_document_that_fails_a_stage_is_dead_lettered_with_its_reason(make_runtime: RuntimeFactory) -> None:
    from services.embedder.adapters.fake import HashingBackend
    from services.embedder.errors import PermanentEmbeddingError

    class RefusesPoison(HashingBackend):
        def embed(self, texts):  # type: ignore[no-untyped-def]
            if any("POISON" in t for t in texts):
                raise PermanentEmbeddingError("backend refused the input")
            return super().embed(texts)

    runtime = make_runtime(backend=RefusesPoison())
    runtime.intake.accept(_doc("bad", "This chunk carries POISON inside."))
    runtime.intake.accept(_doc("good", "A perfectly ordinary document about invoices."))
    assert runtime.wait_idle(timeout=60)
    assert [h.document_id for h in _search(runtime, "invoices")] == ["good"]
    letters = runtime.journal.dead_letters()
    assert [(d.stage, d.error_type, d.key) for d in letters] == [
        ("embedder", "PermanentEmbeddingError", "acme/bad")
    ]
    assert "refused" in letters[0].reason


def test_accepted_changes_survive_a_restart_before_processing(make_runtime: RuntimeFactory) -> None:
    first = make_runtime(start=False)  # accepts, but its pipeline never runs: as if it crashed after 202
    for i in range(5):
        first.intake.accept(_doc(f"doc-{i}", f"Document number {i} about durable intake."))
    first.stop()
    second = make_runtime()
    assert second.wait_idle(timeout=60)
    found = {h.document_id for h in _search(second, "durable intake", mode=SearchMode.SPARSE)}
    assert found == {f"doc-{i}" for i in range(5)}
    assert second.journal.backlog() == 0
