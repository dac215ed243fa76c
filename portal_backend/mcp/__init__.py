"""The portal as an MCP server (Model Context Protocol): AI clients search the catalog,
read entities, run templates, follow tasks and ask running services, with the rights of
the portal token they present. An HTTP-layer adapter like routers/ and web/: it calls the
same domain functions with the same request models, and imports neither of them.

- ``portal.py``: what a call needs (settings, database, task queue) and who is calling
- ``tool_models.py``: each tool's input model, built from the REST API's request models
- ``tools.py``: the tools; ``resources.py``: entities and task logs as resources
- ``server.py``: the MCP server (the SDK's low-level ``Server``) over those
- ``http.py``: streamable HTTP at ``/mcp`` in the portal; ``stdio.py``: ``ragportal mcp``
"""
