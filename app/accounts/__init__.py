"""Account lifecycle across domains (deleting an account and everything it owns): it may use
every identity and content domain below it; nothing below imports it."""
