"""The HTTP edge: the lifespan's State, request dependencies, the one principal, rate-limit
dependencies, middleware and the routers. Imports domains, `app.rag` and `app.core`; never
the entry points."""
