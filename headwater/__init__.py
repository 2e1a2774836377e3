"""Headwater: keep a retrieval index (vectors + knowledge graph) continuously in sync with its sources."""

__version__ = "0.1.0"
