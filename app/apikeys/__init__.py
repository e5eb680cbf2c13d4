"""Personal API keys (`sk-...`): issuing, hashing with a pepper, revoking, authenticating.
May import `app.auth`, `app.documents` and `app.core`; never the HTTP edge."""
