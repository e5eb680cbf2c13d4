"""One router per domain: parse, call a service, return a schema."""
