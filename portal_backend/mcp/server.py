"""The MCP server: the SDK's low-level ``Server`` over the portal's tools and resources.

The low-level server, not the decorator-based ``MCPServer``: a tool's input schema must
be exactly its request model's JSON schema (the REST API's), which ``MCPServer`` would
rebuild from a function signature. Arguments are validated by the same model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import mcp_types as types
from anyio import to_thread
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from catalog.errors import InputError, NotFoundError, PortalError
from portal_backend import __version__
from portal_backend.auth import audit
from portal_backend.auth.service import Principal
from portal_backend.db import session_scope
from portal_backend.logging import get_logger
from portal_backend.mcp import resources
from portal_backend.mcp.portal import Portal
from portal_backend.mcp.tools import BY_NAME, TOOLS, Tool, run_tool

log = get_logger(__name__)
RESOURCE_NOT_FOUND = -32002  # the MCP specification's code for an unknown resource

INSTRUCTIONS = (
    "rag-portal: a developer portal for private RAG assistants. Find assistants with "
    "search_catalog (filter kind=component,spec.type=rag-service; full text on names and "
    "descriptions), read one with get_entity, ask it with ask_service. Create one with "
    "list_templates -> dry_run_template -> create_service, then follow get_task until it "
    "completes. Everything runs with the rights of your portal token."
)

# Who is calling, for one request: the HTTP layer's authenticated principal, or stdio's.
PrincipalOf = Callable[[ServerRequestContext[Any, Any]], Principal]


def error_payload(exc: Exception) -> dict[str, Any]:
    """The REST API's error shape (``{error: {name, message, details?}}``) with its status."""
    if isinstance(exc, ValidationError):
        details = [
            {"path": ".".join(str(p) for p in e["loc"]) or "arguments", "message": e["msg"]}
            for e in exc.errors()
        ]
        summary = "; ".join(f"{d['path']}: {d['message']}" for d in details)
        exc = InputError(f"invalid arguments: {summary}")
        return {"error": {"name": "InputError", "message": exc.message, "details": details},
                "status": 400}  # fmt: skip
    if isinstance(exc, PortalError):
        error: dict[str, Any] = {"name": exc.name, "message": exc.message}
        if exc.details:
            error["details"] = [d.as_dict() for d in exc.details]
        return {"error": error, "status": exc.status_code}
    return {"error": {"name": "Error", "message": "internal error (see the portal's log)"},
            "status": 500}  # fmt: skip


def _tool_view(tool: Tool) -> types.Tool:
    return types.Tool(
        name=tool.name,
        title=tool.title,
        description=tool.description,
        input_schema=tool.input_schema(),
        annotations=types.ToolAnnotations(
            title=tool.title,
            read_only_hint=tool.read_only,
            destructive_hint=False,
            idempotent_hint=tool.read_only,
            open_world_hint=False,
        ),
    )


def _audit(
    portal: Portal, principal: Principal, tool: Tool, args: dict[str, Any], status: int
) -> None:
    """Write tools go into the audit log as the REST calls they stand for would."""
    if tool.audit_target is None:
        return
    try:
        target = tool.audit_target(tool.model.model_validate(args))
    except ValidationError:
        target = ""
    try:
        with session_scope(portal.session_factory) as session:
            audit.record_for(session, principal, f"MCP {tool.name}", target, status, {"via": "mcp"})
    except Exception as exc:  # the call happened: its answer must still go out
        log.error("mcp.audit_failed", tool=tool.name, error=repr(exc))


def call(
    portal: Portal, principal: Principal, name: str, arguments: dict[str, Any]
) -> types.CallToolResult:
    """One tool call, blocking (run on a worker thread): the result, or the error as the
    REST API would have answered it, marked ``isError`` so the client's model sees it."""
    tool = BY_NAME.get(name)
    if tool is None:
        raise MCPError(types.INVALID_PARAMS, f"unknown tool {name!r}; tools/list names them")
    try:
        result = run_tool(portal, principal, tool, arguments)
        status = 201 if not tool.read_only else 200
    except (PortalError, ValidationError) as exc:
        payload = error_payload(exc)
        _audit(portal, principal, tool, arguments, payload["status"])
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(payload))],
            structured_content=payload,
            is_error=True,
        )
    except Exception as exc:
        log.exception("mcp.tool_failed", tool=name)
        payload = error_payload(exc)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=json.dumps(payload))],
            structured_content=payload,
            is_error=True,
        )
    _audit(portal, principal, tool, arguments, status)
    structured = result if isinstance(result, dict) else {"result": result}
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(result, default=str))],
        structured_content=json.loads(json.dumps(structured, default=str)),
    )


def build_server(portal: Portal, principal_of: PrincipalOf) -> Server[Any]:
    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        principal_of(ctx)  # only callers the portal knows see the tools
        return types.ListToolsResult(tools=[_tool_view(tool) for tool in TOOLS])

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        principal = principal_of(ctx)
        arguments = dict(params.arguments or {})
        return await to_thread.run_sync(partial(call, portal, principal, params.name, arguments))

    async def list_resource_templates(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        principal_of(ctx)
        return types.ListResourceTemplatesResult(
            resource_templates=[
                types.ResourceTemplate(
                    name="entity",
                    title="Catalog entity",
                    uri_template=resources.ENTITY_TEMPLATE,
                    description="A catalog entity with its relations and status, as JSON",
                    mime_type="application/json",
                ),
                types.ResourceTemplate(
                    name="task-log",
                    title="Task log",
                    uri_template=resources.TASK_LOG_TEMPLATE,
                    description="A scaffolder task's log, one event a line, then its status",
                    mime_type="text/plain",
                ),
            ]
        )

    async def list_resources(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        principal = principal_of(ctx)
        listed = await to_thread.run_sync(partial(resources.list_resources, portal, principal))
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    uri=r.uri,
                    name=r.name,
                    title=r.title,
                    description=r.description,
                    mime_type=r.mime_type,
                )  # fmt: skip
                for r in listed
            ]
        )

    async def read_resource(
        ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        principal = principal_of(ctx)
        uri = str(params.uri)
        try:
            contents = await to_thread.run_sync(
                partial(resources.read_resource, portal, principal, uri)
            )
        except NotFoundError as exc:
            raise MCPError(RESOURCE_NOT_FOUND, exc.message, {"uri": uri}) from exc
        except PortalError as exc:
            raise MCPError(types.INVALID_PARAMS, exc.message, error_payload(exc)) from exc
        return types.ReadResourceResult(
            contents=[
                types.TextResourceContents(
                    uri=contents.uri, mime_type=contents.mime_type, text=contents.text
                )
            ]
        )

    return Server(
        "rag-portal",
        version=__version__,
        title="rag-portal",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
    )
