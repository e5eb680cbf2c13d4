"""Retrieval evaluation over several corpora with cross-validated defaults (issue 18).

corpora: the deterministic corpus builders; questions: the question files; index: chunking
variants, the on-disk embedding cache and the lexical index; methods: the retrieval
configurations compared; metrics; crossval: tune on two corpora, report on the third.
"""
