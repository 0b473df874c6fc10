"""Lists and calls tools through an MCP endpoint with the Python SDK's Streamable HTTP client.

Usage: MCP_HERO_TOKEN=... python client.py URL '[["tool", {"arg": "value"}], ...]'
Prints one JSON object: {"tools": [names], "calls": [CallToolResult, ...]}.
"""

import asyncio
import json
import os
import sys

from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client, streamable_http_client


async def main(url: str, calls: list) -> None:
    headers = {"Authorization": f"Bearer {os.environ['MCP_HERO_TOKEN']}"}
    async with create_mcp_http_client(headers=headers) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                results = [await session.call_tool(name, arguments) for name, arguments in calls]
    print(
        json.dumps(
            {
                "tools": [tool.name for tool in tools.tools],
                "calls": [result.model_dump(mode="json", by_alias=True, exclude_none=True) for result in results],
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], json.loads(sys.argv[2])))
