"""Conversations: a user's threads of chat turns, their titles, paging and deletion. One family
with `app.chat`; may import the domains below it and `app.core`."""
