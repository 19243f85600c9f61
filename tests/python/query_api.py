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
import time
import types
from datetime import date, datetime, timedelta, timezone

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
            "renda/query/v1/records.proto",
            "renda/query/v1/figures.proto",
            "renda/query/v1/enums.proto",
        ],
        check=True,
    )
    for package in ("renda", "renda/query", "renda/query/v1"):
        open(os.path.join(out, package, "__init__.py"), "a").close()
    sys.path.insert(0, out)
    rpc = importlib.import_module("renda.query.v1.query_pb2_grpc")
    # One namespace for the messages and enums of every file, as a program would import them.
    pb = types.SimpleNamespace()
    for name in ("enums_pb2", "records_pb2", "figures_pb2", "query_pb2"):
        module = importlib.import_module("renda.query.v1." + name)
        for attr in dir(module):
            if not attr.startswith("_"):
                setattr(pb, attr, getattr(module, attr))
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


def day(d):
    return (d.year, d.month, d.day)


def typed_records(pb, stub, auth, limited, expect):
    """GetRecord: one message per kind, a workflow's state and its whole history."""
    get = lambda id, md=auth: stub.GetRecord(pb.GetRecordRequest(id=id), metadata=md).record

    s = get(expect["suggestion"])
    check("suggestion kind", (s.kind, s.WhichOneof("body")),
          (pb.RECORD_KIND_SUGGESTION, "suggestion"))
    check("suggestion home", s.home, expect["region"])
    check("suggestion creator", s.creator.region, expect["region"])
    sg = s.suggestion
    check("suggestion title", sg.title, "关于改善村道照明的建议")
    check("suggestion lead", (sg.lead, sg.lead_name), (expect["delegate"], "沈建华"))
    check("suggestion addressed to", sg.addressed_to, expect["region"])
    # 满意 with a B answer: followed up (跟踪落实), not yet closed.
    st = sg.status
    check("suggestion state", st.state, pb.RECORD_STATE_SUGGESTION_TRACKING)
    check("suggestion number", st.number, 7)
    check("suggestion units", [(u.unit, u.role) for u in st.units],
          [("区交通运输局", pb.UNIT_ROLE_LEAD), ("区财政局", pb.UNIT_ROLE_ASSIST)])
    check("suggestion answer class", st.answer_class, pb.ANSWER_CLASS_B)
    check("suggestion answers", [(a.unit, a.answer_class, a.text, day(a.date)) for a in st.answers],
          [("区交通运输局", pb.ANSWER_CLASS_B, "已列入明年村道改造计划。", (2026, 4, 20))])
    check("suggestion dates", (day(st.submit_date), day(st.assign_date), day(st.first_answer_date)),
          ((2026, 3, 1), (2026, 3, 10), (2026, 4, 20)))
    check("answered on time", (st.HasField("answered_on_time"), st.answered_on_time), (True, True))
    check("evaluation", st.evaluation, pb.SATISFACTION_SATISFIED)
    check("no due date while none is awaited", st.HasField("due_date"), False)
    check("history", [(h.WhichOneof("action"), day(h.step.date)) for h in sg.history],
          [("submit", (2026, 3, 1)), ("screen", (2026, 3, 2)), ("assign", (2026, 3, 10)),
           ("answer", (2026, 4, 20)), ("evaluate", (2026, 4, 25))])
    check("history refusals", [h.step.HasField("refusal") for h in sg.history], [False] * 5)
    check("screen step", (sg.history[1].screen.accepted, sg.history[1].screen.number), (True, 7))
    check("answer step", (sg.history[3].answer.unit, sg.history[3].answer.answer_class),
          ("区交通运输局", pb.ANSWER_CLASS_B))
    check("evaluate step", sg.history[4].evaluate.result, pb.SATISFACTION_SATISFIED)
    check("step author", sg.history[0].step.author.region, expect["region"])

    o = get(expect["answered_opinion"])
    check("opinion body", o.WhichOneof("body"), "opinion")
    check("opinion state", o.opinion.status.state, pb.RECORD_STATE_OPINION_HANDLED)
    check("opinion source", o.opinion.source, pb.OPINION_SOURCE_RECEPTION)
    check("opinion answered on the spot", o.opinion.status.answered_on_spot, True)
    check("opinion history", [h.WhichOneof("action") for h in o.opinion.history],
          ["receive", "answer_on_spot"])
    check("opinion reply", o.opinion.history[1].answer_on_spot.reply, "已当场答复")

    a = get(expect["activity"])
    check("activity kind", a.activity.activity_kind, pb.ACTIVITY_KIND_RECEPTION)
    check("activity day", day(a.activity.date), (2026, 11, 10))
    check("activity sign-ins", [(x.delegate, x.name, x.level) for x in a.activity.sign_ins],
          [(expect["delegate"], "沈建华", pb.LEVEL_COUNTY)])
    check("activity received", a.activity.constituents_received, 12)

    d = get(expect["delegate"])
    check("delegate", (d.kind, d.delegate.name, d.delegate.gender),
          (pb.RECORD_KIND_DELEGATE, "沈建华", pb.GENDER_FEMALE))
    seats = stub.ListRecords(
        pb.ListRecordsRequest(filter=pb.RecordFilter(kind=pb.RECORD_KIND_MANDATE,
                                                     delegate=expect["delegate"])),
        metadata=auth,
    ).records
    check("the delegate's seats", len(seats), 1)
    m = get(seats[0].id).mandate
    check("mandate", (m.person, m.congress, m.level, m.term, m.state),
          (expect["delegate"], expect["region"], pb.LEVEL_COUNTY, 17,
           pb.RECORD_STATE_MANDATE_SERVING))

    # What the API never answers, and what a request gets wrong.
    code, field, reason = error_of(lambda: get("not-an-id"))
    check("a malformed id", (code, field, reason),
          (grpc.StatusCode.INVALID_ARGUMENT, "id", "INVALID_FIELD"))
    code, _, reason = error_of(lambda: get("01M9ZZZZZZZZZZZZZZZZZZZZZZ"))
    check("an id not held", (code, reason), (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"))
    # A record outside a limited token's subtree is as if not held: an id probes nothing.
    code, _, reason = error_of(lambda: get(expect["suggestion"], limited))
    check("a record outside the token's subtree", (code, reason),
          (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"))
    theirs = stub.ListRecords(pb.ListRecordsRequest(filter=pb.RecordFilter(
        kind=pb.RECORD_KIND_OPINION)), metadata=limited).records
    check("a record inside it", get(theirs[0].id, limited).home, expect["township"])


def counts(entries, key):
    return {key(e): e.count for e in entries}


def figures(pb, stub, auth, limited, expect):
    """GetRollup, GetDutyRecord and ListQuotaStandings: typed numbers, exact."""
    state_name = lambda e: pb.RecordState.Name(e.state)
    # The county's refresh that composed the township's numbers may lag its first answer.
    deadline = time.time() + 30
    while True:
        rollup = stub.GetRollup(pb.GetRollupRequest(), metadata=auth).rollup
        if rollup.children or time.time() > deadline:
            break
        time.sleep(0.2)
    check("rollup region", (rollup.region, rollup.display_name), (expect["region"], expect["name"]))
    check("rollup children", [(c.region, c.display_name) for c in rollup.children],
          [(expect["township"], expect["township_name"])])
    own, total = rollup.own, rollup.total
    check("own opinions", counts(own.opinions, state_name), expect["own_opinion_states"])
    check("total opinions", counts(total.opinions, state_name), expect["opinion_states"])
    check("own suggestions", counts(own.suggestions, state_name),
          {"RECORD_STATE_SUGGESTION_TRACKING": 1})
    check("answer classes", counts(own.answer_classes, lambda e: e.answer_class),
          {pb.ANSWER_CLASS_B: 1})
    check("answered, on time, evaluated, satisfied",
          (own.answered, own.answered_on_time, own.evaluated, own.satisfied), (1, 1, 1, 1))
    check("activities", [(day(a.month), a.activity_kind, a.count) for a in own.activities],
          [((2026, 11, 0), pb.ACTIVITY_KIND_RECEPTION, 1)])
    check("sign-ins and constituents", (own.sign_in_count, own.constituents_received), (1, 12))
    check("seats", [(s.level, s.state, s.count) for s in own.seats],
          [(pb.LEVEL_COUNTY, pb.RECORD_STATE_MANDATE_SERVING, 2)])
    check("delegate quota", own.delegate_quota.total, 2)
    # The fleet view: the county and its township, both of this release, stating themselves.
    check("fleet nodes", rollup.fleet.node_count, 2)
    check("fleet versions", [(v.version, v.count) for v in rollup.fleet.versions],
          [(expect["version"], 2)])
    check("the county's facts", (rollup.facts.version, rollup.facts.max_protocol_version >= 7),
          (expect["version"], True))
    check("no certificate expiring", rollup.fleet.expiring_certificates.count, 0)
    check("rules judged by", len(rollup.rules) > 0, True)

    township = stub.GetRollup(pb.GetRollupRequest(region=expect["township"]), metadata=auth).rollup
    check("township rollup", (township.region, township.display_name),
          (expect["township"], expect["township_name"]))
    check("township opinions", counts(township.own.opinions, state_name),
          {"RECORD_STATE_OPINION_RECEIVED": 1, "RECORD_STATE_OPINION_HANDLED": 1})
    check("township by month", [(day(m.month), m.count) for m in township.own.opinions_by_month],
          [((2026, 11, 0), 2)])
    mine = stub.GetRollup(pb.GetRollupRequest(), metadata=limited).rollup
    check("a limited token's rollup is its subtree's", mine.region, expect["township"])
    code, field, reason = error_of(
        lambda: stub.GetRollup(pb.GetRollupRequest(region=expect["region"]), metadata=limited))
    check("a rollup outside the token's subtree", (code, field, reason),
          (grpc.StatusCode.PERMISSION_DENIED, "region", "OUTSIDE_SUBTREE"))
    code, _, reason = error_of(
        lambda: stub.GetRollup(pb.GetRollupRequest(region="330411102000"), metadata=auth))
    check("a rollup not held", (code, reason), (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"))

    # The duty record of 2026: one reception, one suggestion, held to the county's rules.
    duty = stub.GetDutyRecord(
        pb.GetDutyRecordRequest(delegate=expect["delegate"], year=2026), metadata=auth
    ).duty_record
    check("duty record", (duty.delegate, duty.name, duty.year), (expect["delegate"], "沈建华", 2026))
    check("duty activities", [r.id for r in duty.activities], [expect["activity"]])
    check("duty suggestions", [r.id for r in duty.suggestions], [expect["suggestion"]])
    check("duty receptions", duty.reception_count, 1)
    # Three receptions a year and one suggestion by default: the suggestion is met, and one
    # reception of three is behind while 2026 runs, short once it is over.
    # Days are China's (UTC+8), as the node counts them.
    today = datetime.now(timezone(timedelta(hours=8))).date()
    year_over = today > date(2026, 12, 31)
    behind = pb.STANDING_SHORT if year_over else pb.STANDING_BEHIND
    check("duty standing", duty.standing.standing, behind)
    judged = {j.rule.counts: (j.have, j.need, j.standing) for j in duty.standing.judgements}
    check("duty judgements", judged, {
        pb.QUOTA_COUNTS_ACTIVITIES: (1, 3, behind),
        pb.QUOTA_COUNTS_SUGGESTIONS: (1, 1, pb.STANDING_MET),
    })
    code, field, _ = error_of(lambda: stub.GetDutyRecord(
        pb.GetDutyRecordRequest(delegate=expect["delegate"], year=1800), metadata=auth))
    check("a year out of range", (code, field), (grpc.StatusCode.INVALID_ARGUMENT, "year"))
    code, _, reason = error_of(lambda: stub.GetDutyRecord(
        pb.GetDutyRecordRequest(delegate=expect["delegate"], year=2026), metadata=limited))
    check("a duty record outside the token's subtree", (code, reason),
          (grpc.StatusCode.NOT_FOUND, "NOT_FOUND"))
    code, _, reason = error_of(lambda: stub.ListQuotaStandings(
        pb.ListQuotaStandingsRequest(year=2026), metadata=limited))
    check("the county's standings for a township's token", (code, reason),
          (grpc.StatusCode.PERMISSION_DENIED, "OUTSIDE_SUBTREE"))

    # Both delegates, one a page: the pages add up, each once, by id.
    first_token = stub.ListQuotaStandings(
        pb.ListQuotaStandingsRequest(year=2026, page_size=1), metadata=auth).next_page_token
    listed, token = [], ""
    while True:
        standings = stub.ListQuotaStandings(
            pb.ListQuotaStandingsRequest(year=2026, page_size=1, page_token=token), metadata=auth)
        check("standings total", standings.total_size, 2)
        listed += [(s.subject, s.id, s.name, s.standing) for s in standings.standings]
        token = standings.next_page_token
        if not token:
            break
    check("standings", listed, [
        (pb.QUOTA_SUBJECT_DELEGATE, expect["delegate"], "沈建华", behind),
        (pb.QUOTA_SUBJECT_DELEGATE, expect["idle_delegate"], "陆秀英", behind),
    ])
    code, field, reason = error_of(lambda: stub.ListQuotaStandings(
        pb.ListQuotaStandingsRequest(year=2025, page_size=1, page_token=first_token),
        metadata=auth))
    check("a standings token for another year", (code, field, reason),
          (grpc.StatusCode.INVALID_ARGUMENT, "page_token", "PAGE_TOKEN_MISMATCH"))
    check("judged as of", day(standings.judge_date),
          (2026, 12, 31) if year_over else day(today))
    check("standing rules", {r.counts for r in standings.rules} >= {
        pb.QUOTA_COUNTS_ACTIVITIES, pb.QUOTA_COUNTS_SUGGESTIONS}, True)
    check("every rule has its description", all(r.description for r in standings.rules), True)
    met = stub.ListQuotaStandings(
        pb.ListQuotaStandingsRequest(year=2026, standing=pb.STANDING_MET), metadata=auth)
    check("standings that met", (met.total_size, len(met.standings)), (0, 0))
    groups = stub.ListQuotaStandings(
        pb.ListQuotaStandingsRequest(year=2026, subject=pb.QUOTA_SUBJECT_GROUP), metadata=auth)
    check("group standings", groups.total_size, 0)


def reflection_only(channel, auth, expect):
    """What grpcurl does with no proto files: learn the service from server reflection, build
    requests from the descriptors it returns, and decode the answers the same way."""
    from google.protobuf import descriptor_pool, json_format, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service = pool.FindServiceByName("renda.query.v1.QueryService")
    methods = {m.name for m in service.methods}
    for name in ("GetNode", "ListRecords", "GetRecord", "GetRollup", "ListChanges"):
        if name not in methods:
            sys.exit(f"reflection: {name} missing from {sorted(methods)}")

    def call(method, request_json):
        m = service.FindMethodByName(method)
        request = message_factory.GetMessageClass(m.input_type)()
        json_format.Parse(request_json, request)
        response_class = message_factory.GetMessageClass(m.output_type)
        invoke = channel.unary_unary(
            f"/{service.full_name}/{method}",
            request_serializer=lambda r: r.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        return json_format.MessageToDict(invoke(request, metadata=auth))

    node = call("GetNode", "{}")["node"]
    check("reflection: node", (node["region"], node["level"]), (expect["region"], "LEVEL_COUNTY"))
    record = call("GetRecord", json.dumps({"id": expect["suggestion"]}))["record"]
    check("reflection: record", (record["kind"], record["suggestion"]["status"]["state"]),
          ("RECORD_KIND_SUGGESTION", "RECORD_STATE_SUGGESTION_TRACKING"))
    listed = call("ListRecords", '{"filter": {"kind": "RECORD_KIND_OPINION"}}')
    check("reflection: opinions", listed["totalSize"], expect["opinions"])


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
    # grpcurl asks grpc.reflection.v1 first; its messages are v1alpha's on the wire.
    v1 = channel.stream_stream(
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    services = {s.name for r in v1 for s in r.list_services_response.service}
    check("reflection v1 lists the Query API", "renda.query.v1.QueryService" in services, True)

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

    # The township synced once before this client started; its numbers reach the county's
    # rollup at the county's next refresh.
    deadline = time.time() + 30
    while True:
        children = stub.ListChildren(pb.ListChildrenRequest(), metadata=auth).children
        if children or time.time() > deadline:
            break
        time.sleep(0.2)
    check("children", [(c.region, c.display_name, c.level) for c in children],
          [(expect["township"], expect["township_name"], pb.LEVEL_TOWNSHIP)])
    check("child stale", children[0].stale, False)
    health = stub.GetSyncHealth(pb.GetSyncHealthRequest(), metadata=auth)
    check("links", [(l.peer, l.role) for l in health.links],
          [(expect["township"], pb.LINK_ROLE_CHILD)])
    link = health.links[0]
    check("records from the township", link.records_in >= expect["township_opinions"], True)
    check("link last success", link.HasField("last_success_time"), True)
    check("link error", link.last_error, "")

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
            check("record home", r.home in (expect["region"], expect["township"]), True)
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
    check("by day: the days", [list(d) for d, _ in by_day], expect["opinion_days"])
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
        lambda: stub.ListRecords(pb.ListRecordsRequest(page_size=-1), metadata=auth)
    )
    check("a negative page size", (code, field), (grpc.StatusCode.INVALID_ARGUMENT, "page_size"))
    # A page larger than the most a page holds gets that most (AIP-158), and pages on.
    big = stub.ListRecords(pb.ListRecordsRequest(filter=opinions, page_size=100000),
                           metadata=auth)
    check("a page asked too large", (len(big.records), big.next_page_token),
          (expect["opinions"], ""))
    # A request too large to be one a program meant is refused before it is read.
    code, _, reason = error_of(
        lambda: stub.ListRecords(
            pb.ListRecordsRequest(filter=pb.RecordFilter(within="3" * 70000)), metadata=auth
        )
    )
    check("a request too large", (code, reason),
          (grpc.StatusCode.RESOURCE_EXHAUSTED, "REQUEST_TOO_LARGE"))

    # Counts, in all and by state, without paging.
    counted = stub.CountRecords(pb.CountRecordsRequest(filter=opinions), metadata=auth)
    check("opinion count", counted.total, expect["opinions"])
    check("the states add up", sum(s.count for s in counted.states), counted.total)
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

    # A token limited to a township's subtree reads only what the township sent up, and is
    # refused a region outside it and the whole node's log.
    limited = [("authorization", f"Bearer {args.limited_token}")]
    check("limited node", stub.GetNode(pb.GetNodeRequest(), metadata=limited).node.region,
          expect["region"])
    mine = stub.ListRecords(pb.ListRecordsRequest(filter=opinions), metadata=limited)
    check("limited opinions", (mine.total_size, len(mine.records)),
          (expect["township_opinions"], expect["township_opinions"]))
    check("limited opinions' home", {r.home for r in mine.records}, {expect["township"]})
    everything = stub.ListRecords(pb.ListRecordsRequest(page_size=500), metadata=limited)
    check("limited: everything is the township's",
          {r.home for r in everything.records}, {expect["township"]})
    check("limited count",
          stub.CountRecords(pb.CountRecordsRequest(), metadata=limited).total,
          everything.total_size)
    feed = stub.ListChanges(pb.ListChangesRequest(page_size=1000), metadata=limited)
    check("limited feed", sorted(c.record.id for c in feed.changes),
          sorted(r.id for r in everything.records))
    check("limited children",
          [c.region for c in stub.ListChildren(pb.ListChildrenRequest(), metadata=limited).children],
          [expect["township"]])
    check("limited links",
          [l.peer for l in stub.GetSyncHealth(pb.GetSyncHealthRequest(), metadata=limited).links],
          [expect["township"]])
    code, field, reason = error_of(
        lambda: stub.ListRecords(
            pb.ListRecordsRequest(filter=pb.RecordFilter(within="330411102000")),
            metadata=limited,
        )
    )
    check("a region outside the token's subtree",
          (code, field, reason),
          (grpc.StatusCode.PERMISSION_DENIED, "filter.within", "OUTSIDE_SUBTREE"))
    typed_records(pb, stub, auth, limited, expect)
    reflection_only(channel, auth, expect)
    figures(pb, stub, auth, limited, expect)
    print("query_api.py: every call answered as expected")


if __name__ == "__main__":
    main()
