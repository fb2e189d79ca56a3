"""A FastMCP proxy (PyPI `fastmcp`) in front of the demo server, for `make bench-peers`.

Usage: python fastmcp_proxy.py DEMO_SERVER_PATH PORT
Serves Streamable HTTP on http://127.0.0.1:PORT/mcp.
"""

import sys

from fastmcp.server import create_proxy

demo, port = sys.argv[1], int(sys.argv[2])
proxy = create_proxy({"mcpServers": {"demo": {"command": demo, "args": []}}}, name="fastmcp-proxy")
proxy.run(transport="http", host="127.0.0.1", port=port, path="/mcp", show_banner=False)
