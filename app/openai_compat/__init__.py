"""The OpenAI dialect (`/v1`): request and response shapes, completions over the chat service
and embeddings over the embedder, errors in OpenAI's shape. The highest domain: it may import
every domain below it, `app.rag` and `app.core`; never the HTTP edge."""
