"""HTTP route of the knowledge graph: an entity's neighbourhood inside the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from schemas.common import TenantId
from services.graph_builder.domain import Subgraph
from services.graph_builder.graph import MAX_FANOUT, MAX_HOPS
from services.query.access import Caller
from services.query.errors import Forbidden, TenantRequired
from services.query.routes import CallerDep, QueryServiceDep

router = APIRouter()


@router.get("/v1/entities/{entity_id}", response_model=Subgraph, tags=["query"])
def entity_neighbourhood(
    service: QueryServiceDep,
    caller: CallerDep,
    entity_id: Annotated[str, Path(min_length=1, max_length=200, description="e.g. `org:acme`")],
    tenant: Annotated[
        TenantId | None, Query(description="the API key's tenant; required when access control is off")
    ] = None,
    hops: Annotated[int, Query(ge=1, le=MAX_HOPS)] = 1,
    fanout: Annotated[int, Query(ge=1, le=MAX_FANOUT, description="heaviest neighbours kept per node")] = 10,
) -> Subgraph:
    """The entity, its neighbours up to `hops` away (the `fanout` heaviest per node) and their edges,
    from the graph of the API key's tenant only."""
    return service.entity_neighbourhood(
        tenant=tenant_of(caller, tenant), entity_id=entity_id, hops=hops, fanout=fanout
    )


def tenant_of(caller: Caller | None, asked: str | None) -> str:
    """The tenant whose graph is read: the key's (a different one asked for is refused), or, with access
    control off, the one named in the request."""
    if caller is not None:
        if asked is not None and asked != caller.tenant:
            raise Forbidden("this API key reads its own tenant only")
        return caller.tenant
    if asked is None:
        raise TenantRequired("name the tenant: `?tenant=…`")
    return asked
