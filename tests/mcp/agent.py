#!/usr/bin/env python3
"""An MCP agent for Shoal's tests, on the official Python MCP SDK (PyPI `mcp`).

  agent.py http URL TOKEN PROJECT WORKFLOW
  agent.py stdio PROJECT WORKFLOW -- COMMAND [ARGS...]

Connects, lists the tools, asks start_run without confirm (must be refused with a
preview), then with confirm, follows the instance with show_instance until it ends,
and reads its task's log with read_task_log. Prints one JSON object with what it saw.
"""

import json
import sys

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def text_of(res):
    return "\n".join(c.text for c in res.content if getattr(c, "type", None) == "text")


async def drive(session, project, workflow):
    seen = {}
    await session.initialize()
    tools = await session.list_tools()
    seen["tools"] = sorted(t.name for t in tools.tools)
    seen["schemas_ok"] = all(t.input_schema.get("type") == "object" for t in tools.tools)
    res = await session.call_tool("show_definition", {"project": project, "workflow": workflow})
    shown = json.loads(text_of(res)) if not res.is_error else {}
    seen["definition_yaml"] = shown.get("yaml") or ""
    args = {"project": project, "workflow": workflow, "params": {"who": "agent"}}
    res = await session.call_tool("start_run", args)
    seen["unconfirmed"] = {"is_error": res.is_error, "text": text_of(res)}
    res = await session.call_tool("start_run", {**args, "confirm": True})
    seen["confirmed"] = {"is_error": res.is_error, "text": text_of(res)}
    if res.is_error:
        return seen
    launch = json.loads(text_of(res))
    instance = launch.get("instance")
    if instance is None and launch.get("run"):
        # Accepted by a proxy: the instance id comes once a cluster took it.
        for _ in range(200):
            res = await session.call_tool("list_instances", {"project": project, "workflow": workflow, "limit": 1})
            items = json.loads(text_of(res)).get("items", [])
            if items:
                instance = items[0]["id"]
                break
            await anyio.sleep(0.2)
    seen["instance"] = instance
    detail = None
    for _ in range(300):
        res = await session.call_tool("show_instance", {"id": instance})
        detail = json.loads(text_of(res))
        if detail["state"] in ("succeeded", "failed", "stopped"):
            break
        await anyio.sleep(0.2)
    seen["state"] = detail["state"]
    task = detail["tasks"][0]["id"]
    res = await session.call_tool("read_task_log", {"task_id": task})
    seen["log"] = {"is_error": res.is_error, "text": text_of(res)}
    res = await session.call_tool("read_task_log", {"task_id": task, "tail_bytes": 200})
    seen["tail"] = {"is_error": res.is_error, "text": text_of(res)}
    return seen


async def main():
    mode = sys.argv[1]
    if mode == "http":
        url, token, project, workflow = sys.argv[2:6]
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
            async with streamable_http_client(url, http_client=http) as (r, w):
                async with ClientSession(r, w) as session:
                    seen = await drive(session, project, workflow)
    else:
        project, workflow = sys.argv[2:4]
        cmd = sys.argv[sys.argv.index("--") + 1:]
        params = StdioServerParameters(command=cmd[0], args=cmd[1:])
        async with stdio_client(params) as (r, w):
            async with ClientSession(r, w) as session:
                seen = await drive(session, project, workflow)
    print(json.dumps(seen))


anyio.run(main)
