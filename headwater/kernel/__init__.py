"""Leaf helpers below the stages: Postgres connections, problem+json, model files, sentences, rate limits
and HTTP retries. Nothing here imports a stage, the runtimes or the commands."""
