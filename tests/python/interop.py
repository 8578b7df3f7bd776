"""Talks to natsgen services using only docs/PROTOCOL.md and nats-py.

Usage: python interop.py NATS_URL

Expects `generated-example serve` (all services) on that server. Exits non-zero with a message on
the first contract violation; prints one line per check and a closing summary line.
"""

import asyncio
import json
import sys
import uuid

import nats
from nats.errors import NoRespondersError, TimeoutError

checks = []


def check(condition, what, detail=""):
    if not condition:
        raise AssertionError(f"{what}: {detail}")
    checks.append(what)
    print(f"ok - {what}")


async def request(nc, subject, body, timeout=10):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await nc.request(subject, data, timeout=timeout)


async def next_message(sub, timeout=15):
    return await sub.next_msg(timeout=timeout)


async def main(url):
    nc = await nats.connect(url)

    # Sync RPC: params object in, {"result": ...} out.
    reply = await request(nc, "order_service.rpc.process_payment", {"order_id": "py_1", "amount": 12.5})
    body = json.loads(reply.data)
    result = body.get("result")
    check(isinstance(result, dict), "process_payment replies {\"result\": {...}}", body)
    check(result["order_id"] == "py_1" and result["amount"] == 12.5, "the result echoes the order", result)
    check(result["transaction_id"].startswith("txn_"), "a txn_ transaction id", result)
    check(result["status"] == "completed", "the payment completed", result)
    check("T" in result["processed_at"] and result["processed_at"].endswith("Z"), "processed_at is RFC 3339 UTC", result)

    # A declared error: micro headers plus {"error": {...}}.
    reply = await request(nc, "order_service.rpc.process_payment", {"order_id": "py_2", "amount": 1_000_000})
    headers = reply.headers or {}
    check(headers.get("Nats-Service-Error-Code") == "422", "a declared error has code 422", headers)
    check(bool(headers.get("Nats-Service-Error")), "and a Nats-Service-Error message", headers)
    error = json.loads(reply.data)["error"]
    check(error["kind"] == "PaymentDeclined", "its kind is the declared name", error)
    check(isinstance(error.get("details", {}).get("reason"), str), "its details carry the declared fields", error)

    # A malformed body: 400 bad_request, and the service keeps serving.
    reply = await request(nc, "order_service.rpc.process_payment", b"{not json")
    headers = reply.headers or {}
    check(headers.get("Nats-Service-Error-Code") == "400", "a malformed body gets 400", headers)
    check(json.loads(reply.data)["error"]["kind"] == "bad_request", "of kind bad_request", reply.data)
    reply = await request(nc, "order_service.rpc.process_payment", {"order_id": "py_3", "amount": 1})
    check("result" in json.loads(reply.data), "the service still serves", reply.data)

    # An unknown method has no responders.
    try:
        await request(nc, "order_service.rpc.no_such_method", {}, timeout=5)
        check(False, "an unknown method has no responders", "got a reply")
    except NoRespondersError:
        check(True, "an unknown method has no responders")

    # Events: create_order publishes orders.created on its topic.
    created = await nc.subscribe("orders.created")
    item = {"sku": "SKU-1", "name": "Widget", "quantity": 2, "unit_price": 5.0}
    reply = await request(nc, "order_service.rpc.create_order", {"user_id": "py_user", "items": [item]})
    order = json.loads(reply.data)["result"]
    check(order["total"] == 10.0 and order["status"] == "created", "create_order returns the order", order)
    while True:
        msg = await next_message(created)
        event = json.loads(msg.data)
        if event.get("order_id") == order["order_id"]:
            break
    check(event["user_id"] == "py_user", "orders.created carries the order", event)
    check(bool((msg.headers or {}).get("Nats-Msg-Id")), "an event carries a Nats-Msg-Id", msg.headers)

    # Headers: a caller may send natsgen's headers (older natsgen clients send all of them); the
    # service honours them, and its own nested calls send only what the callee needs.
    nested_rpc = await nc.subscribe("order_service.rpc.create_order")
    nested_async = await nc.subscribe("notification_service.async.send_email")
    trace_id = uuid.uuid4().hex
    old_headers = {
        "Natsgen-Call-Id": "py-call-1",
        "Natsgen-Caller-Chain": "py-root-0",
        "Natsgen-Deadline-Ms": "20000",
        "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
    }
    order_data = {
        "user_id": "py_workflow",
        "email": "py_workflow@example.com",
        "items": [item],
        "shipping_address": "1 Python Way",
    }
    reply = await nc.request(
        "ecommerce_workflow.rpc.process_order",
        json.dumps({"order_data": order_data}).encode(),
        timeout=30,
        headers=old_headers,
    )
    confirmation = json.loads(reply.data).get("result")
    check(isinstance(confirmation, dict), "a request with every natsgen header is served", reply.data)
    msg = await next_message(nested_rpc)
    headers = msg.headers or {}
    check(
        headers.get("Natsgen-Caller-Chain") == "py-root-0,py-call-1",
        "a nested call extends the caller chain it was given",
        headers,
    )
    parent = headers.get("traceparent", "").split("-")
    check(
        len(parent) == 4 and parent[1] == trace_id and parent[2] != "00f067aa0ba902b7",
        "a nested call continues the caller's trace with a new span",
        headers,
    )
    check("Natsgen-Call-Id" not in headers, "a nested RPC call leaves its call id to the callee", headers)
    confirmation_id = f"send_email:{confirmation['order_id']}/confirmation"
    while True:
        msg = await next_message(nested_async)
        headers = msg.headers or {}
        if headers.get("Nats-Msg-Id") == confirmation_id:
            break
    check(
        headers.get("Natsgen-Caller-Chain") == "py-root-0,py-call-1"
        and headers.get("traceparent", "").split("-")[1:2] == [trace_id],
        "a nested async call carries the chain and the trace",
        headers,
    )
    check(bool(headers.get("Natsgen-Call-Id")), "an async call with a key carries its call id", headers)
    await nested_rpc.unsubscribe()
    await nested_async.unsubscribe()

    # Async: a plain core publish to <service>.async.<method> is processed; emails.sent follows.
    sent = await nc.subscribe("emails.sent")
    recipient = f"py_{uuid.uuid4().hex[:8]}@example.com"
    await nc.publish(
        "notification_service.async.send_email",
        json.dumps({"recipient": recipient, "subject": "hello", "body": "from python"}).encode(),
    )
    while True:
        msg = await next_message(sent, timeout=30)
        if json.loads(msg.data).get("recipient") == recipient:
            break
    check(True, "send_email by raw publish leads to emails.sent")

    # A JetStream publish (with a PubAck) works the same, and is stored once per Nats-Msg-Id.
    js = nc.jetstream()
    recipient2 = f"py_{uuid.uuid4().hex[:8]}@example.com"
    payload = json.dumps({"recipient": recipient2, "subject": "again", "body": "x"}).encode()
    ack1 = await js.publish("notification_service.async.send_email", payload, headers={"Nats-Msg-Id": f"send_email:{recipient2}"})
    ack2 = await js.publish("notification_service.async.send_email", payload, headers={"Nats-Msg-Id": f"send_email:{recipient2}"})
    check(ack1.stream == "ASYNC_notification_service", "async calls land in ASYNC_<service>", ack1)
    check(ack2.duplicate, "the same Nats-Msg-Id is stored once", ack2)

    # Discovery: $SRV.PING lists the services (several replies: gather for a moment).
    inbox = nc.new_inbox()
    pings = await nc.subscribe(inbox)
    await nc.publish("$SRV.PING", b"", reply=inbox)
    names = set()
    try:
        while True:
            msg = await pings.next_msg(timeout=1)
            ping = json.loads(msg.data)
            if ping.get("type") == "io.nats.micro.v1.ping_response":
                names.add(ping["name"])
    except TimeoutError:
        pass
    expected = {"order_service", "notification_service", "inventory_service", "email_service", "analytics_service"}
    check(expected <= names, "$SRV.PING lists the services", sorted(names))
    reply = await request(nc, "$SRV.INFO.order_service", b"")
    info = json.loads(reply.data)
    check(info["type"] == "io.nats.micro.v1.info_response", "$SRV.INFO.<name> answers", info)
    subjects = {e["subject"] for e in info["endpoints"]}
    check("order_service.rpc.process_payment" in subjects, "INFO lists the RPC endpoints", subjects)

    # Timers: a scope-service timer is listed with its period and scope, and its ticks are async
    # calls on <service>.async.<timer>, deduplicated by Nats-Msg-Id <timer>:<tick>.
    reply = await request(nc, "$SRV.INFO.inventory_service", b"")
    info = json.loads(reply.data)
    timers = [e for e in info["endpoints"] if e["metadata"].get("kind") == "timer"]
    check(
        [(e["name"], e["subject"], e["metadata"].get("every_ms"), e["metadata"].get("scope")) for e in timers]
        == [("stock_report", "inventory_service.async.stock_report", "30000", "service")],
        "INFO lists the timer with its period and scope",
        timers,
    )
    tick = {"Nats-Msg-Id": "stock_report:1"}
    ack1 = await js.publish("inventory_service.async.stock_report", b'{"tick":1}', headers=tick)
    ack2 = await js.publish("inventory_service.async.stock_report", b'{"tick":1}', headers=tick)
    check(
        ack1.stream == "ASYNC_inventory_service" and not ack1.duplicate and ack2.duplicate,
        "a tick is stored in the service's work queue once per tick id",
        (ack1, ack2),
    )

    await nc.drain()
    print(f"{len(checks)} passed, 0 failed")


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except AssertionError as error:
        print(f"not ok - {error}")
        print(f"{len(checks)} passed, 1 failed")
        sys.exit(1)
