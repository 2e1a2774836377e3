"""Reading a `/metrics` page in the end-to-end tests (Prometheus' text format, parsed by its client)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

BOOKS = ("in", "out", "dead_lettered", "rewound")


@dataclass(frozen=True)
class Scrape:
    """The samples of one page: (name, labels) -> value."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    @classmethod
    def parse(cls, text: str) -> Scrape:
        return cls(
            {
                (sample.name, frozenset(sample.labels.items())): float(sample.value)
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }
        )

    def value(self, name: str, **labels: str) -> float:
        """The sum over the series of `name` that carry `labels` (0 when none does)."""
        wanted = set(labels.items())
        return sum(v for (n, have), v in self.samples.items() if n == name and wanted <= have)

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        return [(dict(labels), v) for (n, labels), v in self.samples.items() if n == name]

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}

    def books(self, stage: str) -> dict[str, float]:
        """A stage's accounting: messages in, out, dead-lettered, rewound, and events it emitted."""
        found = {c: self.value(f"headwater_stage_messages_{c}_total", stage=stage) for c in BOOKS}
        found["emitted"] = self.value("headwater_stage_events_emitted_total", stage=stage)
        return found

    def minus(self, earlier: Scrape) -> Scrape:
        """Counter increases since `earlier` (for a registry that other tests of the process share)."""
        return Scrape({key: v - earlier.samples.get(key, 0.0) for key, v in self.samples.items()})
