#!/usr/bin/env python3
"""patchbay's gRPC contract as a Python service developer meets it.

Generates stubs from proto/ with grpcio-tools, then, against a running server with the demo
tenants (`demo` on Elision, `demo-vicidial` on stock VICIdial, both on the built-in simulators):
calls every RPC of every service, pages every List, clears an agent's email with an update mask,
decodes rich errors (ErrorInfo, BadRequest) with grpcio-status, sees DEADLINE_EXCEEDED with
ErrorInfo on a stalled vendor, and resolves every service through reflection with the stock
grpcio-reflection client (v1alpha) and a raw v1 stream.

    python3 -m pip install -r tests/python/requirements.txt
    python3 tests/python/client.py --addr 127.0.0.1:50051 --token demo-token --admin-token demo-admin

tests/python_client.rs runs it against a real server (CI does); it exits non-zero naming the
first expectation that failed.
"""

import argparse
import importlib
import json
import pathlib
import subprocess
import sys
import tempfile
import urllib.request
import uuid

import grpc
from google.protobuf import descriptor_pool, field_mask_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status

REPO = pathlib.Path(__file__).resolve().parents[2]
PROTO = REPO / "proto"


def generate_stubs(out: pathlib.Path):
    """grpcio-tools over proto/patchbay/v1, as a client project would run it."""
    files = sorted(str(p.relative_to(PROTO)) for p in (PROTO / "patchbay" / "v1").glob("*.proto"))
    cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO}", f"--python_out={out}", f"--grpc_python_out={out}"]
    subprocess.run(cmd + files, check=True, cwd=PROTO)
    sys.path.insert(0, str(out))
    return {name: (importlib.import_module(f"patchbay.v1.{name}_pb2"), importlib.import_module(f"patchbay.v1.{name}_pb2_grpc"))
            for name in ["common", "account", "dialer", "provisioning", "registry"]}


class Failed(Exception):
    pass


def expect(cond, what):
    if not cond:
        raise Failed(what)


def details(err: grpc.RpcError):
    """The rich error of a failed call: (ErrorInfo or None, [BadRequest field names])."""
    status = rpc_status.from_call(err)
    info, fields = None, []
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return info, fields


class Client:
    def __init__(self, args, pb):
        self.channel = grpc.insecure_channel(args.addr)
        self.tenant_md = [("authorization", f"Bearer {args.token}")]
        self.admin_md = [("authorization", f"Bearer {args.admin_token}")]
        self.pb = pb
        self.called = set()
        self.stalled_account = args.stalled_account
        self.http_addr = args.http_addr

    def stub(self, area, service):
        return getattr(self.pb[area][1], f"{service}Stub")(self.channel)

    def call(self, area, service, method, request, admin=False, **kw):
        """One unary or server-streaming call, recorded for the every-RPC check."""
        self.called.add(f"patchbay.v1.{service}/{method}")
        fn = getattr(self.stub(area, service), method)
        return fn(request, metadata=self.admin_md if admin else self.tenant_md, **kw)

    def fails(self, code, area, service, method, request, admin=False, **kw):
        """A call that must fail with `code`; its rich error."""
        try:
            self.call(area, service, method, request, admin=admin, **kw)
        except grpc.RpcError as err:
            expect(err.code() == code, f"{service}/{method}: expected {code}, got {err.code()} {err.details()}")
            return details(err)
        raise Failed(f"{service}/{method}: expected {code}, but it succeeded")

    def pages(self, area, service, method, make, items, admin=False):
        """Every page of a List RPC (page_size 1, so that paging is exercised), and the items."""
        out, token, pages = [], "", 0
        while True:
            answer = self.call(area, service, method, make(page_size=1, page_token=token), admin=admin)
            got = list(getattr(answer, items))
            expect(len(got) <= 1, f"{method}: page_size 1 gave {len(got)} items")
            out += got
            pages += 1
            token = answer.next_page_token
            expect(pages < 1000, f"{method}: paging does not end")
            if not token:
                return out, pages


def account(c: Client):
    a = c.pb["account"][0]
    customer = c.pb["common"][0].Customer
    panel = c.call("account", "AccountService", "GetAccountStatus",
                   a.GetAccountStatusRequest(tenant="demo", customer=customer(nickname="100200300")))
    expect(panel.account_number == "100200300", f"the demo account, got {panel.account_number!r}")
    expect(panel.calling_plans and panel.calling_plans[0].HasField("start_date"),
           "a calling plan's start_date is a Timestamp")
    expect(panel.calling_plans[0].start_date.ToDatetime().year >= 2000, "a plausible start date")
    info, _ = c.fails(grpc.StatusCode.NOT_FOUND, "account", "AccountService", "GetAccountStatus",
                      a.GetAccountStatusRequest(tenant="demo", customer=customer(nickname="999000999")))
    expect(info and info.reason == "ACCOUNT_NOT_ENABLED", f"ErrorInfo reason ACCOUNT_NOT_ENABLED, got {info}")

    sync = c.call("account", "AccountService", "SyncSipLines", a.SyncSipLinesRequest(
        tenant="demo", customer=customer(nickname="100200300"), mode=a.SYNC_MODE_FULL, request_id=str(uuid.uuid4())))
    lines = len(sync.added) + len(sync.updated) + len(sync.unchanged)
    expect(lines == 3, f"the demo account has 3 SIP lines, the sync saw {lines}")
    rows, pages = c.pages("account", "AccountService", "ListSipLines", lambda **p: a.ListSipLinesRequest(
        tenant="demo", customer=customer(nickname="100200300"), **p), "rows")
    expect(len(rows) == 3 and pages == 3, f"3 rows on 3 pages, got {len(rows)} on {pages}")
    first = c.call("account", "AccountService", "ListSipLines", a.ListSipLinesRequest(
        tenant="demo", customer=customer(nickname="100200300"), page_size=1))
    _, fields = c.fails(grpc.StatusCode.INVALID_ARGUMENT, "account", "AccountService", "ListSipLines",
                        a.ListSipLinesRequest(tenant="demo", customer=customer(nickname="100200301"),
                                              page_token=first.next_page_token))
    expect(fields == ["page_token"], f"another customer's token is refused on page_token, got {fields}")

    created = c.call("account", "AccountService", "CreateAccount", a.CreateAccountRequest(
        tenant="demo", customer=customer(nickname="100200400", name="Acme Plumbing", status="current"),
        account_type=a.ACCOUNT_TYPE_SIMPLE, request_id=str(uuid.uuid4())))
    expect(created.account_number == "100200400", "the new account")
    _, fields = c.fails(grpc.StatusCode.INVALID_ARGUMENT, "account", "AccountService", "CreateAccount",
                        a.CreateAccountRequest(tenant="demo", customer=customer(nickname="1", name="x"),
                                               billing_cycle_day=40, request_id=str(uuid.uuid4())))
    expect({"customer.nickname", "billing_cycle_day"} <= set(fields), f"BadRequest names the bad fields: {fields}")
    status = c.call("account", "AccountService", "SetCustomerStatus", a.SetCustomerStatusRequest(
        tenant="demo", customer=customer(nickname="100200300", status="suspended"), request_id=str(uuid.uuid4())))
    expect(status.desired == a.ACCOUNT_STATE_DISABLED, f"suspended maps to DISABLED, got {status.desired}")
    deleted = c.call("account", "AccountService", "DeleteAccount", a.DeleteAccountRequest(
        tenant="demo", customer=customer(nickname="100200400"), confirm=True, request_id=str(uuid.uuid4())))
    expect(not deleted.already_deleted, "the new account is deleted")

    # A stalled vendor and a short deadline: DEADLINE_EXCEEDED, answered by the server with ErrorInfo.
    info, _ = c.fails(grpc.StatusCode.DEADLINE_EXCEEDED, "account", "AccountService", "GetAccountStatus",
                      a.GetAccountStatusRequest(tenant="demo", customer=customer(nickname=c.stalled_account)),
                      timeout=1.0)
    expect(info and info.reason == "DEADLINE_EXCEEDED", f"the server's ErrorInfo DEADLINE_EXCEEDED, got {info}")


def dialer(c: Client):
    d = c.pb["dialer"][0]
    for tenant in ["demo", "demo-vicidial"]:
        agent = d.Agent(user="py1000", password="secret9", level=1, full_name="Py Agent", group="AGENTS",
                        email="py.agent@example.com")
        made = c.call("dialer", "DialerService", "CreateAgent",
                      d.CreateAgentRequest(tenant=tenant, agent=agent, request_id=str(uuid.uuid4())))
        expect(made.agent.user == "py1000" and not made.agent.password, "the agent, without its password")
        # The mask names email, left empty: the dialer empties it. full_name is set but not named: kept.
        cleared = c.call("dialer", "DialerService", "UpdateAgent", d.UpdateAgentRequest(
            tenant=tenant, agent=d.Agent(user="py1000", full_name="Not Sent"),
            update_mask=field_mask_pb2.FieldMask(paths=["email"]), request_id=str(uuid.uuid4())))
        expect(cleared.vendor_message, "the dialer's answer line")
        _, fields = c.fails(grpc.StatusCode.INVALID_ARGUMENT, "dialer", "DialerService", "UpdateAgent",
                            d.UpdateAgentRequest(tenant=tenant, agent=d.Agent(user="py1000"),
                                                 update_mask=field_mask_pb2.FieldMask(paths=["voicemail_id", "emial"])))
        expect(sorted(fields) == ["agent.voicemail_id", "update_mask.paths"], f"bad mask paths named: {fields}")
        reach = c.call("dialer", "DialerService", "GetDialerStatus", d.GetDialerStatusRequest(tenant=tenant))
        expect(reach.provider in ("elision", "vicidial"), f"the provider, got {reach.provider!r}")
    doomed = d.Agent(user="py1001", password="secret9", level=1, full_name="Py Doomed", group="AGENTS")
    c.call("dialer", "DialerService", "CreateAgent",
           d.CreateAgentRequest(tenant="demo-vicidial", agent=doomed, request_id=str(uuid.uuid4())))
    deleted = c.call("dialer", "DialerService", "DeleteAgent",
                     d.DeleteAgentRequest(tenant="demo-vicidial", user="py1001", request_id=str(uuid.uuid4())))
    expect(deleted.user == "py1001", "stock VICIdial deletes the agent")
    info, _ = c.fails(grpc.StatusCode.UNIMPLEMENTED, "dialer", "DialerService", "DeleteAgent",
                      d.DeleteAgentRequest(tenant="demo", user="py1000", request_id=str(uuid.uuid4())))
    expect(info and info.reason == "NOT_SUPPORTED_BY_PROVIDER", f"Elision cannot delete, got {info}")

    made = c.call("dialer", "DialerService", "CreateList", d.CreateListRequest(
        tenant="demo", list=d.DialList(list_id="1101", name="Python list", campaign_id="TESTCAMP", active=True),
        request_id=str(uuid.uuid4())))
    expect(made.list_id == "1101", "the new list")
    lists, pages = c.pages("dialer", "DialerService", "ListActiveLists",
                           lambda **p: d.ListActiveListsRequest(tenant="demo", **p), "lists")
    ids = [l.list_id for l in lists]
    expect("1101" in ids and len(set(ids)) == len(ids) and pages == len(ids), f"every active list once: {ids}")
    expect(ids == sorted(ids, key=lambda i: (len(i), i)), f"in numeric order: {ids}")

    def export():
        yield d.ExportLeadsRequest(tenant="demo", request_id=str(uuid.uuid4()),
                                   target=d.ExportTarget(existing_list_id="1101"))
        yield d.ExportLeadsRequest(batch=d.LeadBatch(leads=[d.Lead(phone_number="+1 (555) 010-0199", first_name="Ann"),
                                                             d.Lead(phone_number="12-34")]))
    c.called.add("patchbay.v1.DialerService/ExportLeads")
    summary = c.stub("dialer", "DialerService").ExportLeads(export(), metadata=c.tenant_md)
    expect((summary.accepted, summary.rejected) == (1, 1), f"1 accepted, 1 rejected: {summary}")
    expect([r.status for r in summary.results] == [d.LEAD_STATUS_ACCEPTED, d.LEAD_STATUS_REJECTED], "lead statuses")


def provisioning(c: Client):
    p = c.pb["provisioning"][0]
    types = c.call("provisioning", "ProvisioningService", "GetRegionNumberTypes",
                   p.GetRegionNumberTypesRequest(tenant="demo", region=p.REGION_JAPAN))
    expect("0120" in [t.key for t in types.number_types], "Japan offers 0120")
    orders = []
    for name in ["Sakura Ramen", "Ume Sushi"]:
        order = c.call("provisioning", "ProvisioningService", "ProvisionNumbers", p.ProvisionNumbersRequest(
            tenant="demo", new_customer=p.NumberCustomer(business_name=name, email="owner@example.com"),
            region=p.REGION_JAPAN, number_type="0120", count=2, terms_accepted=True, request_id=str(uuid.uuid4())))
        expect(order.state == p.ORDER_STATE_COMPLETED and len(order.numbers) == 2, f"a completed order: {order}")
        expect(order.HasField("created_at") and order.created_at.seconds > 0, "created_at is a Timestamp")
        expect(order.history and order.history[0].HasField("at"), "each history event has its Timestamp")
        orders.append(order)
    got = c.call("provisioning", "ProvisioningService", "GetOrder",
                 p.GetOrderRequest(tenant="demo", order_id=orders[0].order_id))
    expect(got.order_id == orders[0].order_id, "GetOrder answers the order")
    listed, pages = c.pages("provisioning", "ProvisioningService", "ListOrders",
                            lambda **kw: p.ListOrdersRequest(tenant="demo", **kw), "orders")
    expect([o.order_id for o in listed] == [o.order_id for o in reversed(orders)], "newest first, every order once")
    watched = list(c.call("provisioning", "ProvisioningService", "WatchOrder",
                          p.WatchOrderRequest(tenant="demo", order_id=orders[0].order_id)))
    expect(watched and watched[-1].state == p.ORDER_STATE_COMPLETED, "a completed order's watch ends at once")
    company = orders[0].company_id
    # voicemail is set but not named in the mask: not sent.
    update = c.call("provisioning", "ProvisioningService", "UpdateCustomer", p.UpdateCustomerRequest(
        tenant="demo", company_id=company, business_name="Sakura Ramen & Bar", voicemail=True,
        update_mask=field_mask_pb2.FieldMask(paths=["business_name"]), request_id=str(uuid.uuid4())))
    expect([list(s.parameters) for s in update.steps] == [["business_name"]], f"only the named field: {update}")
    _, fields = c.fails(grpc.StatusCode.INVALID_ARGUMENT, "provisioning", "ProvisioningService", "UpdateCustomer",
                        p.UpdateCustomerRequest(tenant="demo", company_id=company,
                                                update_mask=field_mask_pb2.FieldMask(paths=["email"])))
    expect(fields == ["email"], f"Delacon cannot clear: the field is named, got {fields}")


def registry(c: Client):
    r = c.pb["registry"][0]
    tenants, pages = c.pages("registry", "RegistryService", "ListTenants", r.ListTenantsRequest, "tenants", admin=True)
    expect([t.tenant for t in tenants] == ["demo", "demo-vicidial"] and pages == 2, f"both demo tenants: {tenants}")
    tenant = c.call("registry", "RegistryService", "GetTenant", r.GetTenantRequest(tenant="demo"), admin=True)
    expect(tenant.HasField("loaded_at") and tenant.loaded_at.seconds > 0, "loaded_at is a Timestamp")
    text = (REPO / "providers.d" / "demo.yaml").read_text()
    valid = c.call("registry", "RegistryService", "ValidateConfig",
                   r.ValidateConfigRequest(yaml=text, file_name="demo.yaml"), admin=True)
    expect(valid.valid, f"the shipped demo file is valid: {valid.diagnostics}")
    c.call("registry", "RegistryService", "ReloadConfig", r.ReloadConfigRequest(), admin=True)
    events, _ = c.pages("registry", "RegistryService", "ListAuditEvents",
                        lambda **p: r.ListAuditEventsRequest(tenant="demo", **p), "events", admin=True)
    expect(len(events) >= 10 and all(e.HasField("at") for e in events), f"the audit trail, {len(events)} events")
    expect(len({e.id for e in events}) == len(events), "every event once across pages")

    # Events: a CRM trigger posted over plain HTTP, then the operator's views of what came in and
    # what went out (the demo's SIP sync above produced a webhook for its endpoint).
    change = {"event_id": str(uuid.uuid4()), "changed_at": "2026-12-01T10:00:00Z",
              "customer": {"nickname": "100200300", "status": "current", "previous_status": "suspended"}}
    post = urllib.request.Request(f"http://{c.http_addr}/triggers/demo/customer-status/"
                                  "demo-trigger-secret-0123456789abcdef",
                                  data=json.dumps(change).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(post, timeout=10) as answer:
        decided = json.load(answer)
    expect(answer.status == 202 and decided["state"] == "accepted", f"the trigger is accepted: {decided}")
    inbound, _ = c.pages("registry", "RegistryService", "ListInboundEvents",
                         lambda **p: r.ListInboundEventsRequest(tenant="demo", **p), "events", admin=True)
    expect([e.id for e in inbound] == [decided["event"]] and inbound[0].state == "accepted",
           f"the posted event, stored: {inbound}")
    deliveries, _ = c.pages("registry", "RegistryService", "ListWebhookDeliveries",
                            lambda **p: r.ListWebhookDeliveriesRequest(tenant="demo", **p), "deliveries", admin=True)
    expect(deliveries and all(d.webhook_id.startswith("msg_") for d in deliveries), f"deliveries: {deliveries}")
    again = c.call("registry", "RegistryService", "ResendWebhookDelivery",
                   r.ResendWebhookDeliveryRequest(tenant="demo", delivery_id=deliveries[-1].id), admin=True)
    expect(again.id == deliveries[-1].id and again.attempts == 0, f"due again from scratch: {again}")
    info, _ = c.fails(grpc.StatusCode.NOT_FOUND, "registry", "RegistryService", "ResendWebhookDelivery",
                      r.ResendWebhookDeliveryRequest(tenant="demo", delivery_id=999999999), admin=True)
    expect(info and info.reason == "DELIVERY_NOT_FOUND", f"ErrorInfo DELIVERY_NOT_FOUND, got {info}")


def health(c: Client):
    stub = health_pb2_grpc.HealthStub(c.channel)
    expect(stub.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING, "SERVING")
    watch = stub.Watch(health_pb2.HealthCheckRequest(service="patchbay.v1.AccountService"))
    expect(next(watch).status == health_pb2.HealthCheckResponse.SERVING, "Watch starts SERVING")
    watch.cancel()


def reflection(c: Client, expected_services):
    db = ProtoReflectionDescriptorDatabase(c.channel)
    services = set(db.get_services())
    expect(expected_services <= services, f"reflection lists {sorted(expected_services - services)} too")
    pool = descriptor_pool.DescriptorPool(db)
    for name in sorted(services):
        service = pool.FindServiceByName(name)
        for method in service.methods:
            expect(method.input_type.full_name and method.output_type.full_name, f"{name}/{method.name}")
    for symbol, file in [("google.rpc.BadRequest", "google/rpc/error_details.proto"),
                         ("google.rpc.Status", "google/rpc/status.proto"),
                         ("google.protobuf.Timestamp", "google/protobuf/timestamp.proto"),
                         ("google.protobuf.FieldMask", "google/protobuf/field_mask.proto")]:
        found = pool.FindFileContainingSymbol(symbol).name
        expect(found == file, f"{symbol} is served in {file}, not {found}")

    # v1, on a raw stream (its messages are v1alpha's on the wire): the other version's symbols
    # resolve, and an unknown symbol is an answer in the stream, which goes on.
    stream = c.channel.stream_stream("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                                     request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                     response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
    asks = [reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.reflection.v1alpha.ServerReflection"),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.such.Symbol"),
            reflection_pb2.ServerReflectionRequest(list_services="")]
    answers = list(stream(iter(asks)))
    expect([a.WhichOneof("message_response") for a in answers]
           == ["file_descriptor_response", "error_response", "list_services_response"],
           f"three answers in order, the middle one an error: {answers}")
    expect(answers[1].error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0], "NOT_FOUND in the stream")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--addr", default="127.0.0.1:50051")
    ap.add_argument("--http-addr", default="127.0.0.1:8080", help="the public HTTP listener (CRM triggers)")
    ap.add_argument("--token", default="demo-token")
    ap.add_argument("--admin-token", default="demo-admin")
    ap.add_argument("--stalled-account", default="555000111",
                    help="an account number whose Alianza lookup the simulator never answers")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as out:
        pb = generate_stubs(pathlib.Path(out))
        c = Client(args, pb)
        try:
            for part in [account, dialer, provisioning, registry, health]:
                part(c)
            every = {f"patchbay.v1.{s.name}/{m.name}"
                     for mod, _ in pb.values() for s in mod.DESCRIPTOR.services_by_name.values() for m in s.methods}
            expect(every <= c.called, f"every RPC is called; not: {sorted(every - c.called)}")
            reflection(c, {s.split("/")[0] for s in every} | {"grpc.health.v1.Health",
                                                              "grpc.reflection.v1.ServerReflection",
                                                              "grpc.reflection.v1alpha.ServerReflection"})
        except Failed as failure:
            print(f"FAILED: {failure}", file=sys.stderr)
            return 1
        except grpc.RpcError as err:
            print(f"FAILED: an unexpected gRPC error: {err.code()} {err.details()}", file=sys.stderr)
            return 1
    print(f"ok: {len(c.called)} RPCs called, every List paged, reflection resolves every service")
    return 0


if __name__ == "__main__":
    sys.exit(main())
