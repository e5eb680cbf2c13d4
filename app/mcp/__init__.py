"""The MCP server at `/mcp`: the knowledge base as Model Context Protocol tools for agents and
IDE assistants, behind the same credentials, limits and visibility as the REST API."""
