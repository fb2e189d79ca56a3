"""A stdio MCP server that misbehaves on purpose, for the gateway's fault tests.

Speaks just enough raw JSON-RPC (initialize, tools/list, tools/call) to be brought into service,
then does what its mode says:
  stall   at its first tools/call, stops reading stdin for good (its pipe fills up);
  flood   after initialization, writes junk to stdout and stderr as fast as it can, forever
          (with ANSI escape sequences in it), while still answering calls;
  echo    answers `tools/call raw` with the exact text of the `arguments` it received, as the
          bytes came in (to check that the gateway forwards them untouched).
"""

import json
import sys
import threading

MODE = sys.argv[1]
TOOLS = [{"name": "raw", "description": "Echoes its arguments as received",
          "inputSchema": {"type": "object"}}]
out_lock = threading.Lock()


def send(message):
    line = json.dumps(message) + "\n"
    with out_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def raw_arguments(line):
    """The `arguments` object's text exactly as it stood in the request line."""
    start = line.index('"arguments"')
    start = line.index("{", start)
    depth, i, in_string = 0, start, False
    while i < len(line):
        c = line[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return line[start:i + 1]
        i += 1
    return line[start:]


def flood():
    junk = "\x1b[31mjunk\x1b[0m " * 8
    n = 0
    while True:
        n += 1
        with out_lock:
            sys.stdout.write("%s %d\n" % (junk, n))
        sys.stderr.write("log line %d %s\n" % (n, junk))


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method, mid = message.get("method"), message.get("id")
        if method == "initialize":
            send({"jsonrpc": "2.0", "id": mid, "result": {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "misbehaving-" + MODE, "version": "1"}}})
        elif method == "notifications/initialized":
            if MODE == "flood":
                threading.Thread(target=flood, daemon=True).start()
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": mid, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            if MODE == "stall":
                threading.Event().wait()  # never reads stdin again
            text = raw_arguments(line) if MODE == "echo" else "ok"
            send({"jsonrpc": "2.0", "id": mid,
                  "result": {"content": [{"type": "text", "text": text}]}})
        elif mid is not None:
            send({"jsonrpc": "2.0", "id": mid,
                  "error": {"code": -32601, "message": "no " + str(method)}})


main()
