"""HTTP routes of the query service: thin shells over `QueryService`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from schemas import SearchPage, SearchRequest
from services.query.service import QueryService

router = APIRouter()


def get_query_service(request: Request) -> QueryService:
    service: QueryService = request.app.state.query_service
    return service


QueryServiceDep = Annotated[QueryService, Depends(get_query_service)]


@router.post("/v1/search", response_model=SearchPage, tags=["query"])
def search(body: SearchRequest, service: QueryServiceDep) -> SearchPage:
    """Hybrid, dense or sparse search inside one tenant; soft-deleted chunks are never returned."""
    return service.search(body)
