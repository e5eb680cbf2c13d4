"""Collections: team knowledge bases with members and roles (owner, editor, viewer).

May import `app.documents` (a collection's documents go with it), `app.auth` (its members are
users), `app.rag` and `app.core`; never `app.apikeys`, `app.chat` or the HTTP edge.
"""
