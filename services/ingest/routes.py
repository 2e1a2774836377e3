"""HTTP intake: `POST /v1/documents` answers 202 only once the change is durable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, status

from schemas import Accepted, IngestDocument
from services.ingest.service import IntakeService

router = APIRouter()


def get_intake(request: Request) -> IntakeService:
    intake: IntakeService = request.app.state.intake
    return intake


IntakeDep = Annotated[IntakeService, Depends(get_intake)]


@router.post("/v1/documents", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted, tags=["intake"])
def ingest_document(body: IngestDocument, intake: IntakeDep) -> Accepted:
    """Accept a document change (upsert or delete); it is searchable once the pipeline has indexed it."""
    return intake.accept(body)
