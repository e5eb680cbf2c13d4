"""Implementations of the RAG Protocols: embedded defaults (`local/`) and remote services
(Hugging Face, Pinecone), each SDK imported only when its backend is chosen."""
