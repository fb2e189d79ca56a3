"""Interop: scrapes mcp-gateway's /metrics and parses it with the official Prometheus client.

Usage: python metrics_scrape.py http://127.0.0.1:PORT/metrics [TOKEN]
Prints one JSON line per sample: {"family", "type", "name", "labels", "value"}, after one line
{"contentType": ...}. Exits non-zero (with a traceback) when the page does not parse.
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    url = sys.argv[1]
    request = urllib.request.Request(url)
    if len(sys.argv) > 2:
        request.add_header("Authorization", "Bearer " + sys.argv[2])
    with urllib.request.urlopen(request, timeout=10) as response:
        content_type = response.headers.get("Content-Type")
        text = response.read().decode("utf-8")
    print(json.dumps({"contentType": content_type}), flush=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            print(
                json.dumps(
                    {
                        "family": family.name,
                        "type": family.type,
                        "name": sample.name,
                        "labels": sample.labels,
                        "value": sample.value,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
