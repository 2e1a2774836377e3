"""Embedding-model migration: a new collection built beside the old one, cut over by alias."""
