"""The knowledge base's documents: extraction, chunking, ingestion (inline, in the background
or by `chatbot worker`), deletion, and the live-documents filter for remote stores. May import
`app.rag`, `app.auth` and `app.core`."""
