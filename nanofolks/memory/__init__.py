"""The crew's memory: event log search, embeddings, vector index, entities, preferences, priming,
consolidation and forgetting. The rest of the app uses `MemoryService` (service.py)."""
