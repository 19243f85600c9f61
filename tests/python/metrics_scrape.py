"""The metrics endpoint as a Prometheus scraper reads it.

Fetches GET /metrics from a running node and parses the body with the Prometheus project's own
Python client (prometheus_client.parser). That parser is laxer than Prometheus's own: it refuses
lines that break the format, but takes a sample outside its family for a family of its own, of
type unknown; this endpoint declares the type of every family, so one of type unknown (or a
family twice) is refused here. Prints one JSON object: each family's name to its type and its
samples (name, labels, value), for the Rust test that started the node (tests/multiprocess.rs)
to check.

Usage: python3 tests/python/metrics_scrape.py --url http://127.0.0.1:PORT/metrics
Exits non-zero, saying why, if the endpoint does not answer or its text does not parse.
"""

import argparse
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    # Straight to the node: a proxy named in the environment must not stand in between.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(args.url, timeout=10) as response:
        content_type = response.headers.get("Content-Type", "")
        body = response.read().decode("utf-8")
    if not content_type.startswith("text/plain; version=0.0.4"):
        print(f"unexpected Content-Type {content_type!r}", file=sys.stderr)
        return 1
    families = {}
    try:
        for family in text_string_to_metric_families(body):
            if family.name in families:
                print(f"family {family.name} appears twice\n{body}", file=sys.stderr)
                return 1
            if family.type == "unknown":
                print(f"family {family.name} has no declared type\n{body}", file=sys.stderr)
                return 1
            families[family.name] = {
                "type": family.type,
                "samples": [
                    {"name": s.name, "labels": s.labels, "value": s.value}
                    for s in family.samples
                ],
            }
    except ValueError as e:
        print(f"the metrics do not parse: {e}\n{body}", file=sys.stderr)
        return 1
    json.dump(families, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
