"""A chat turn: the question stored, retrieval and generation through `app.rag`, the answer
stored; the history and its retention. One family with `app.chat.conversations` (a conversation is
a chat's thread); may import the domains below it, `app.rag` and `app.core`."""
