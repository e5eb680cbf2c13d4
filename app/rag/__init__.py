"""Retrieval and generation behind Protocols (`protocols.py`): the pipeline, prompts, memory,
fusion, the lexical index and hybrid search, and the backends. Imports only `app.core`; never a
domain, and never a vendor SDK outside `backends/`."""
