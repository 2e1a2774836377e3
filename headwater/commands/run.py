"""`headwater run <service>`: one service of the distributed runtime as its own process."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Annotated

import typer

from headwater.runtime.distributed import SERVICES

Service = StrEnum("Service", {name.replace("-", "_").upper(): name for name in SERVICES})  # type: ignore[misc]


def run_service(
    service: Annotated[Service, typer.Argument(help="which service this process runs")],
    host: Annotated[str, typer.Option(help="HTTP bind address (ingest, query, index-node)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port (ingest, query, index-node)")] = 8080,
    metrics_port: Annotated[
        int, typer.Option(envvar="HEADWATER_METRICS_PORT", help="Prometheus /metrics port; 0 = off")
    ] = 9400,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run one service on the Kafka cluster named by HEADWATER_KAFKA_BOOTSTRAP_SERVERS."""
    from headwater.models import offline
    from headwater.observability import tracing
    from headwater.observability.logs import configure_logging
    from headwater.runtime.distributed import metrics
    from headwater.runtime.distributed.services import build_service

    configure_logging(
        service=service.value,
        verbose=verbose,
        default_format="json",  # a service's output goes to a log collector; HEADWATER_LOG_FORMAT=text
        text_format=f"%(asctime)s %(levelname)s {service.value} %(name)s: %(message)s",
        quiet=(
            "presidio-analyzer",
            "presidio-anonymizer",
            "sentence_transformers",
            "httpx",
            "aiokafka",
            "faststream",
        ),
    )
    tracing.configure(service.value)  # OTEL_* variables; a no-op when no exporter is configured
    offline()
    process = build_service(service.value)
    metrics.serve_metrics(metrics_port)
    asyncio.run(process.serve(host=host, port=port))
