"""Users, passwords and tokens, and the `Principal` value a request is resolved to. The lowest
domain: it imports only `app.core`."""
