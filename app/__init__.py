"""The RAG chat backend. Layers, top to bottom (README, "Architecture"; checked by
`lint-imports`): entry points (`cli`, `main`, `worker`) > composition (`lifespan`, `models`) >
the HTTP edge (`api`) > domains > `rag` > `core`."""
