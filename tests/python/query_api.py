"""The Query API from another language, as a program's author would use it.

Generates Python stubs from proto/ with grpcio-tools (no edits), then calls every RPC of
renda.query.v1.QueryService over TLS against a running node, checking exact answers against
what the test that started the node wrote (tests/query_api.rs). Also checks gRPC health
checking, server reflection, and the errors of AIP-193 (INVALID_ARGUMENT with a
google.rpc.BadRequest naming the field and a google.rpc.ErrorInfo with the reason).

Usage: python3 tests/python/query_api.py --addr HOST:PORT --ca CA.pem --token TOKEN \
           --expect EXPECT.json
Exits non-zero, naming what differed, on the first failure.
"""

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile

import grpc
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO = os.path.join(ROOT, "proto", "proto")


def generate_stubs(out):
    """Stubs for the Query API, straight from proto/: the vendored google/type/date.proto
    resolves the import; its Python module comes with googleapis-common-protos."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            "-I",
            PROTO,
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "renda/query/v1/query.proto",
        ],
        check=True,
    )
    for package in ("renda", "renda/query", "renda/query/v1"):
        open(os.path.join(out, package, "__init__.py"), "a").close()
    sys.path.insert(0, out)
    pb = importlib.import_module("renda.query.v1.query_pb2")
    rpc = importlib.import_module("renda.query.v1.query_pb2_grpc")
    return pb, rpc


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")


def error_of(call):
    """The status code, the BadRequest field and the ErrorInfo reason of a failed call."""
    try:
        call()
    except grpc.RpcError as e:
        status = rpc_status.from_call(e)
        field, reason = None, None
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                field = bad.field_violations[0].field
            elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                check("ErrorInfo.domain", info.domain, "renda.query")
                reason = info.reason
        return e.code(), field, reason
    sys.exit(f"{call} succeeded where it should have failed")


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--addr", required=True)
    args.add_argument("--ca", required=True)
    args.add_argument("--token", required=True)
    args.add_argument("--admin-token", required=True)
    args.add_argument("--limited-token", required=True)
    args.add_argument("--expect", required=True)
    args = args.parse_args()
    with open(args.expect, encoding="utf-8") as f:
        expect = json.load(f)

    out = tempfile.mkdtemp(prefix="renda-stubs-")
    pb, rpc = generate_stubs(out)
    with open(args.ca, "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel(args.addr, credentials)
    stub = rpc.QueryServiceStub(channel)
    auth = [("authorization", f"Bearer {args.token}")]

    # Health checking and reflection need no token, as load balancers and grpcurl expect.
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="renda.query.v1.QueryService")
    )
    check("health", health.status, health_pb2.HealthCheckResponse.SERVING)
    listed = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")])
    )
    services = {s.name for r in listed for s in r.list_services_response.service}
    if "renda.query.v1.QueryService" not in services:
        sys.exit(f"reflection lists {services}")

    # Without a token, or with a wrong one.
    code, _, reason = error_of(lambda: stub.GetNode(pb.GetNodeRequest()))
    check("no token", (code, reason), (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"))
    code, _, _ = error_of(
        lambda: stub.GetNode(pb.GetNodeRequest(), metadata=[("authorization", "Bearer wrong")])
    )
    check("a wrong token", code, grpc.StatusCode.UNAUTHENTICATED)

    node = stub.GetNode(pb.GetNodeRequest(), metadata=auth).node
    check("node.region", node.region, expect["region"])
    check("node.display_name", node.display_name, expect["name"])
    check("node.level", node.level, pb.LEVEL_COUNTY)
    check("node.version", node.version, expect["version"])
    check("node.parent_region", node.parent_region, expect["parent"])
    if not node.min_protocol_version <= node.max_protocol_version:
        sys.exit(f"protocol range {node.min_protocol_version}-{node.max_protocol_version}")

    children = stub.ListChildren(pb.ListChildrenRequest(), metadata=auth).children
    check("children", len(children), 0)
    health = stub.GetSyncHealth(pb.GetSyncHealthRequest(), metadata=auth)
    check("links", len(health.links), 0)

    # Every opinion, two at a time: the pages add up to the total, each id once.
    opinions = pb.RecordFilter(kind=pb.RECORD_KIND_OPINION)
    seen, token = [], ""
    while True:
        page = stub.ListRecords(
            pb.ListRecordsRequest(filter=opinions, page_size=2, page_token=token),
            metadata=auth,
        )
        check("total_size", page.total_size, expect["opinions"])
        seen += [r.id for r in page.records]
        for r in page.records:
            check("record kind", r.kind, pb.RECORD_KIND_OPINION)
            check("record home", r.home, expect["region"])
            if not r.HasField("occur_date") or r.occur_date.year < 2000:
                sys.exit(f"record {r.id} has no occur_date")
        token = page.next_page_token
        if not token:
            break
    check("opinions listed", len(seen), expect["opinions"])
    check("opinions listed once", len(set(seen)), expect["opinions"])
    check("ids in order", seen, sorted(seen))

    # By the day they happened, two at a time: the same records, days in order, ties by id.
    by_day, token = [], ""
    while True:
        page = stub.ListRecords(
            pb.ListRecordsRequest(filter=opinions, page_size=2, page_token=token,
                                  order_by="occur_date"),
            metadata=auth,
        )
        by_day += [((r.occur_date.year, r.occur_date.month, r.occur_date.day), r.id)
                   for r in page.records]
        token = page.next_page_token
        if not token:
            break
    check("by day: the same records", sorted(i for _, i in by_day), sorted(seen))
    check("by day: in order", by_day, sorted(by_day))
    if [i for _, i in by_day] == seen:
        sys.exit("by day: the same order as by id, for records received on other days")
    check("by day: the days", [d for d, _ in by_day],
          [(2026, 11, 1), (2026, 11, 3), (2026, 11, 3), (2026, 11, 4), (2026, 11, 5)])
    due = stub.ListRecords(
        pb.ListRecordsRequest(filter=opinions, order_by="due_date"), metadata=auth
    )
    check("opinions await no answer by a day", (due.total_size, len(due.records)), (0, 0))
    code, field, _ = error_of(
        lambda: stub.ListRecords(pb.ListRecordsRequest(order_by="occur_date"), metadata=auth)
    )
    check("occur_date without a kind", (code, field),
          (grpc.StatusCode.INVALID_ARGUMENT, "order_by"))

    # A page token holds only for the request it came from.
    first = stub.ListRecords(
        pb.ListRecordsRequest(filter=opinions, page_size=1), metadata=auth
    )
    code, field, reason = error_of(
        lambda: stub.ListRecords(
            pb.ListRecordsRequest(
                filter=pb.RecordFilter(kind=pb.RECORD_KIND_NOTICE),
                page_size=1,
                page_token=first.next_page_token,
            ),
            metadata=auth,
        )
    )
    check(
        "a token from another filter",
        (code, field, reason),
        (grpc.StatusCode.INVALID_ARGUMENT, "page_token", "PAGE_TOKEN_MISMATCH"),
    )
    code, field, reason = error_of(
        lambda: stub.ListRecords(
            pb.ListRecordsRequest(filter=opinions, page_size=1, order_by="occur_date",
                                  page_token=first.next_page_token),
            metadata=auth,
        )
    )
    check(
        "a token from another order",
        (code, field, reason),
        (grpc.StatusCode.INVALID_ARGUMENT, "page_token", "PAGE_TOKEN_MISMATCH"),
    )
    # Malformed input names the field.
    code, field, reason = error_of(
        lambda: stub.ListRecords(
            pb.ListRecordsRequest(filter=pb.RecordFilter(within="33041")), metadata=auth
        )
    )
    check(
        "a malformed region",
        (code, field, reason),
        (grpc.StatusCode.INVALID_ARGUMENT, "filter.within", "INVALID_FIELD"),
    )
    code, field, reason = error_of(
        lambda: stub.CountRecords(
            pb.CountRecordsRequest(
                filter=pb.RecordFilter(
                    kind=pb.RECORD_KIND_NOTICE, state=pb.RECORD_STATE_OPINION_HANDLED
                )
            ),
            metadata=auth,
        )
    )
    check(
        "a state of another kind",
        (code, field, reason),
        (grpc.StatusCode.INVALID_ARGUMENT, "filter.state", "STATE_OF_ANOTHER_KIND"),
    )
    code, field, _ = error_of(
        lambda: stub.ListRecords(pb.ListRecordsRequest(page_size=501), metadata=auth)
    )
    check("a page too large", (code, field), (grpc.StatusCode.INVALID_ARGUMENT, "page_size"))

    # Counts, in all and by state, without paging.
    counted = stub.CountRecords(pb.CountRecordsRequest(filter=opinions), metadata=auth)
    check("opinion count", counted.total, expect["opinions"])
    by_state = {pb.RecordState.Name(s.state): s.count for s in counted.states}
    check("opinions by state", by_state, expect["opinion_states"])
    handled = stub.ListRecords(
        pb.ListRecordsRequest(
            filter=pb.RecordFilter(
                kind=pb.RECORD_KIND_OPINION, state=pb.RECORD_STATE_OPINION_HANDLED
            )
        ),
        metadata=auth,
    )
    check(
        "handled opinions",
        len(handled.records),
        expect["opinion_states"].get("RECORD_STATE_OPINION_HANDLED", 0),
    )
    notices = stub.CountRecords(
        pb.CountRecordsRequest(filter=pb.RecordFilter(kind=pb.RECORD_KIND_NOTICE)),
        metadata=auth,
    )
    check("notice count", notices.total, expect["notices"])

    # The change feed: everything once, then nothing new from where it ended.
    changed, after = [], 0
    while True:
        page = stub.ListChanges(
            pb.ListChangesRequest(after_sequence=after, page_size=3), metadata=auth
        )
        changed += [c.record.id for c in page.changes]
        if page.changes:
            check("sequence order", [c.sequence for c in page.changes],
                  sorted(c.sequence for c in page.changes))
        after = page.next_sequence
        if not page.more:
            break
    listed_all = stub.CountRecords(pb.CountRecordsRequest(), metadata=auth).total
    check("records in the feed", len(changed), listed_all)
    check("each record once", len(set(changed)), len(changed))
    again = stub.ListChanges(pb.ListChangesRequest(after_sequence=after), metadata=auth)
    check("nothing new", (len(again.changes), again.next_sequence), (0, after))

    # The audit log needs the admin role; newest first, a page at a time.
    code, _, reason = error_of(
        lambda: stub.ListAuditEntries(pb.ListAuditEntriesRequest(), metadata=auth)
    )
    check("audit as a viewer", (code, reason),
          (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"))
    admin = [("authorization", f"Bearer {args.admin_token}")]
    rules, token = [], ""
    while True:
        page = stub.ListAuditEntries(
            pb.ListAuditEntriesRequest(page_size=2, page_token=token), metadata=admin
        )
        check("audit total_size", page.total_size, len(expect["audit_rules"]))
        rules += [e.rule for e in page.entries]
        for e in page.entries:
            check("audit peer", e.peer, "330411101000")
            known = e.kind_name in ("opinion", "suggestion")
            check("audit kind of " + e.kind_name,
                  e.kind != pb.RECORD_KIND_UNSPECIFIED, known)
        token = page.next_page_token
        if not token:
            break
    check("audit entries, newest first", rules, expect["audit_rules"])

    # A token limited to a township's subtree reads only that subtree, where this county holds
    # none of its own records, and is refused a region outside it and the whole node's log.
    limited = [("authorization", f"Bearer {args.limited_token}")]
    check("limited node", stub.GetNode(pb.GetNodeRequest(), metadata=limited).node.region,
          expect["region"])
    mine = stub.ListRecords(pb.ListRecordsRequest(filter=opinions), metadata=limited)
    check("limited opinions", (mine.total_size, len(mine.records)), (0, 0))
    check("limited count",
          stub.CountRecords(pb.CountRecordsRequest(), metadata=limited).total, 0)
    feed = stub.ListChanges(pb.ListChangesRequest(), metadata=limited)
    check("limited feed", len(feed.changes), 0)
    code, field, reason = error_of(
        lambda: stub.ListRecords(
            pb.ListRecordsRequest(filter=pb.RecordFilter(within="330411102000")),
            metadata=limited,
        )
    )
    check("a region outside the token's subtree",
          (code, field, reason),
          (grpc.StatusCode.PERMISSION_DENIED, "filter.within", "OUTSIDE_SUBTREE"))
    print("query_api.py: every call answered as expected")


if __name__ == "__main__":
    main()
