"""Footprint of `mcp-gateway bridge`: startup time and memory, the figures in README.md.

Usage: python3 tests/interop/bridge_footprint.py target/release/mcp-gateway target/release/mcp-demo-server [RUNS]
(plain python3: it needs nothing but the standard library; build with `cargo build --release --bins`).

Starts a gateway with the demo server on a free loopback port, then, RUNS times (default 20):
- times `mcp-gateway --version` (exec and exit of the binary, nothing else);
- times an initialize POSTed straight to the gateway (what the gateway itself takes);
- starts the bridge, writes initialize to its stdin and times until the answer's line is read
  (exec + the bridge's start + its initialize round trip through the gateway);
- sends notifications/initialized, tools/list and 100 echo calls, then reads VmRSS from
  /proc/<pid>/status; then a 2 MB answer (demo `big`), and VmRSS and the peak VmHWM;
- closes stdin and times until the bridge has exited (it DELETEs its session first; exit 0).
Prints medians (min, max).
"""
import json, socket, statistics, subprocess, sys, time, http.client
import tempfile, os
CONFIG = os.path.join(tempfile.mkdtemp(), "config.json")
BIN = sys.argv[1]; DEMO = sys.argv[2]; RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 20
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
cfg = {"gateway": {"port": port}, "servers": [{"name": "demo", "command": [DEMO]}], "mapping": {"demo": {"prefix": "demo_"}}}
open(CONFIG, "w").write(json.dumps(cfg))
gw = subprocess.Popen([BIN, "--config", CONFIG], stderr=subprocess.DEVNULL)
url = f"http://127.0.0.1:{port}/mcp"
for _ in range(200):
    try:
        c = http.client.HTTPConnection("127.0.0.1", port); c.request("GET", "/health"); r = c.getresponse()
        if json.loads(r.read()).get("status") == "ok": break
    except Exception: pass
    time.sleep(0.05)
INIT = {"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"m","version":"1"}}}
def line(m): return (json.dumps(m) + "\n").encode()
def rss(pid):
    d = {}
    for l in open(f"/proc/{pid}/status"):
        k, v = l.split(":", 1)
        if k in ("VmRSS", "VmHWM", "Threads"): d[k] = v.strip()
    return d
def direct():
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("POST", "/mcp", json.dumps(INIT), {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    r = c.getresponse(); r.read(); sid = r.getheader("Mcp-Session-Id")
    t = time.perf_counter() - t0
    c.request("DELETE", "/mcp", headers={"Mcp-Session-Id": sid}); c.getresponse().read()
    return t
def version():
    t0 = time.perf_counter(); subprocess.run([BIN, "--version"], stdout=subprocess.DEVNULL); return time.perf_counter() - t0
starts, directs, versions, after_session, after_big, exits = [], [], [], [], [], []
for i in range(RUNS):
    versions.append(version()); directs.append(direct())
    t0 = time.perf_counter()
    p = subprocess.Popen([BIN, "bridge", url], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    p.stdin.write(line(INIT)); p.stdin.flush(); p.stdout.readline()
    starts.append(time.perf_counter() - t0)
    p.stdin.write(line({"jsonrpc":"2.0","method":"notifications/initialized"}))
    p.stdin.write(line({"jsonrpc":"2.0","id":1,"method":"tools/list"})); p.stdin.flush(); p.stdout.readline()
    for n in range(100):
        p.stdin.write(line({"jsonrpc":"2.0","id":10+n,"method":"tools/call","params":{"name":"demo_echo","arguments":{"text":"x"*100}}}))
        p.stdin.flush(); p.stdout.readline()
    after_session.append(rss(p.pid))
    p.stdin.write(line({"jsonrpc":"2.0","id":999,"method":"tools/call","params":{"name":"demo_big","arguments":{"bytes":2000000}}})); p.stdin.flush(); p.stdout.readline()
    after_big.append(rss(p.pid))
    t0 = time.perf_counter(); p.stdin.close(); p.wait(); exits.append(time.perf_counter() - t0)
    assert p.returncode == 0
gw.terminate(); gw.wait()
ms = lambda xs: f"median {statistics.median(xs)*1000:.2f} ms (min {min(xs)*1000:.2f}, max {max(xs)*1000:.2f})"
print("runs", RUNS)
print("exec --version:          ", ms(versions))
print("direct HTTP initialize:  ", ms(directs))
print("bridge exec->init answer:", ms(starts))
print("stdin EOF -> exit:       ", ms(exits))
kb = lambda l, k: sorted(int(x[k].split()[0]) for x in l)
print("RSS after init+list+100 calls (kB):", kb(after_session, "VmRSS")[len(after_session)//2], "median; range", kb(after_session, "VmRSS")[0], "-", kb(after_session, "VmRSS")[-1], "threads", after_session[0]["Threads"])
print("RSS after a 2 MB answer (kB):", kb(after_big, "VmRSS")[len(after_big)//2], "peak (VmHWM)", kb(after_big, "VmHWM")[len(after_big)//2])
