"""`senticompare serve`: the local API (FastAPI) and web UI over the adapter registry, batch
prediction, merging and studies run as background jobs. docs/serve.md describes it."""
