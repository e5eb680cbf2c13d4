"""Infrastructure every layer may use: settings, database, errors, logging, request ids,
metrics, the scheduler and the rate-limit engine. Imports nothing of ours above it."""
