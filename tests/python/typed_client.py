"""A Python client generated from schemas/ecommerce.yaml against the Rust services.

Usage: python typed_client.py NATS_URL, with the generated package `gen_ecommerce` and the natsgen
Python runtime on PYTHONPATH, and `generated-example serve` (all services) on that server.

Calls every RPC and async method of the walkthrough's services through the generated clients,
gets the declared errors as their exception classes, publishes every event through the generated
`Events` and sees the Rust handlers process them (in `$SRV.STATS`), and runs the walkthrough's
synchronous, event and error-handling sections. Prints one line per check and a summary line;
exits 1 on the first failure.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from datetime import datetime, timezone
from typing import Any

import nats
import natsgen as rt
from gen_ecommerce import ecommerce as ec
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription

passed = 0


def check(condition: bool, what: str, detail: object = "") -> None:
    global passed
    if not condition:
        raise AssertionError(f"{what}: {detail}")
    passed += 1
    print(f"ok - {what}")


async def stats(nc: NATS, service: str) -> dict[str, int]:
    """`num_requests` per endpoint of the (single) instance of `service`."""
    reply = await nc.request(f"$SRV.STATS.{service}", b"", timeout=5)
    body = json.loads(reply.data)
    return {e["name"]: e["num_requests"] for e in body["endpoints"]}


async def processed(nc: NATS, service: str, endpoint: str, before: int, what: str) -> None:
    """Waits until `service.endpoint` has processed more than `before` messages."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if (await stats(nc, service)).get(endpoint, 0) > before:
            check(True, what)
            return
        await asyncio.sleep(0.05)
    check(False, what, f"{service}.{endpoint} processed nothing new in 20 s")


async def next_matching(sub: Subscription, key: str, value: Any, timeout: float = 20) -> Any:
    """The next message on `sub` whose JSON has `key == value`."""
    deadline = time.monotonic() + timeout
    while True:
        msg = await sub.next_msg(timeout=max(deadline - time.monotonic(), 0.01))
        body = json.loads(msg.data)
        if body.get(key) == value:
            return msg


def item(sku: str, name: str, quantity: int, price: float) -> ec.OrderItem:
    return ec.OrderItem(sku=sku, name=name, quantity=quantity, unit_price=price)


async def every_method(nc: NATS) -> None:
    orders = ec.OrderServiceClient(nc)
    notifications = ec.NotificationServiceClient(nc)
    analytics = ec.AnalyticsServiceClient(nc)
    shipping = ec.ShippingServiceClient(nc)
    workflow = ec.EcommerceWorkflowClient(nc)
    batch = ec.BatchServiceClient(nc)

    order = await orders.create_order("py_user", [item("SKU-1", "Widget", 2, 5.0)])
    check(isinstance(order, ec.Order) and order.total == 10.0, "create_order returns an Order", order)
    check(order.status is ec.OrderStatus.CREATED, "enums arrive as their class", order.status)
    check(order.created_at.tzinfo is not None, "timestamps arrive as aware datetimes", order.created_at)

    payment = await orders.process_payment(order.order_id, order.total)
    check(isinstance(payment, ec.PaymentResult) and payment.order_id == order.order_id,
          "process_payment returns a PaymentResult", payment)

    cancelled = await orders.cancel_order(order.order_id, "changed my mind")
    check(cancelled.status is ec.OrderStatus.CANCELLED, "cancel_order returns the cancelled order", cancelled)

    confirmation = await workflow.process_order(ec.OrderRequest(
        user_id="py_flow", email="py_flow@example.com", items=[item("BOOK", "Book", 1, 20.0)],
        shipping_address="1 Python Way",
    ))
    check(isinstance(confirmation, ec.OrderConfirmation) and confirmation.status is ec.OrderStatus.PAID,
          "process_order returns an OrderConfirmation", confirmation)

    results = await batch.process_batch([ec.BatchItem(item_id=f"i{n}", value=float(n)) for n in range(3)])
    check([r.item_id for r in results] == ["i0", "i1", "i2"], "process_batch returns a list of results", results)

    sent = await nc.subscribe("emails.sent")
    recipient = f"py_{uuid.uuid4().hex[:8]}@example.com"
    await notifications.send_email(recipient, "hello", "from typed Python")
    msg = await next_matching(sent, "recipient", recipient)
    check(msg.headers is not None and "Nats-Msg-Id" in msg.headers, "send_email is processed (emails.sent)", msg.headers)
    await sent.unsubscribe()

    before = (await stats(nc, "analytics_service")).get("record_sale", 0)
    await analytics.record_sale("py_order", 12.5)
    await processed(nc, "analytics_service", "record_sale", before, "record_sale is processed")

    scheduled = await nc.subscribe("shipping.scheduled")
    await shipping.schedule_shipping("py_ship", "2 Python Way")
    await next_matching(scheduled, "order_id", "py_ship")
    check(True, "schedule_shipping is processed (shipping.scheduled)")
    await scheduled.unsubscribe()

    done = await nc.subscribe("batch.item_processed")
    await batch.process_item(ec.BatchItem(item_id="py_item", value=2.0))
    await next_matching(done, "item_id", "py_item")
    check(True, "process_item is processed (batch.item_processed)")
    await done.unsubscribe()


async def errors(nc: NATS) -> None:
    orders = ec.OrderServiceClient(nc)
    workflow = ec.EcommerceWorkflowClient(nc)
    try:
        await orders.process_payment("py_big", 1_000_000.0)
        check(False, "a declined payment raises PaymentDeclined", "it was accepted")
    except ec.PaymentDeclined as error:
        check("card limit" in error.reason and error.code == 422 and error.kind == "PaymentDeclined",
              "a declined payment raises PaymentDeclined with its reason", vars(error))
        check(isinstance(error, ec.ProcessPaymentError) and isinstance(error, rt.ServiceError),
              "declared errors share their method's base class", type(error).__mro__)

    try:
        await workflow.process_order(ec.OrderRequest(
            user_id="py_rich", email="py_rich@example.com", items=[item("CAR", "Car", 1, 50_000.0)],
            shipping_address="3 Python Way",
        ))
        check(False, "a failed workflow raises PaymentFailed", "it succeeded")
    except ec.PaymentFailed as error:
        check(error.order_id.startswith("order_") and "card limit" in error.reason,
              "a failed workflow raises PaymentFailed with its fields", vars(error))

    try:
        await orders.create_order("py_nobody", [])
        check(False, "an empty order is a bad request", "accepted")
    except rt.BadRequest as error:
        check(error.code == 400 and "at least one item" in error.message, "an empty order raises BadRequest", error)

    try:
        await orders.cancel_order("no_such_order", "test")
        check(False, "cancelling an unknown order is a bad request", "accepted")
    except rt.BadRequest:
        check(True, "cancelling an unknown order raises BadRequest")

    nobody = rt.Rpc(
        service="nobody_service", name="anything", params=rt.Model,
        result=ec._p.TypeAdapter(type(None)), invoke=lambda impl, ctx, p: impl.anything(ctx),
    )
    try:
        await orders._call(nobody, rt.Model(), 2.0, None)
        check(False, "a method nothing serves raises ServiceUnavailable", "answered")
    except rt.ServiceUnavailable:
        check(True, "a method nothing serves raises ServiceUnavailable at once")

    try:
        await orders.process_payment("py_slow", 1.0, timeout=0.001)
        check(False, "a call past its timeout fails", "answered in 1 ms")
    except (rt.Timeout, rt.DeadlineExceeded) as error:
        check(True, f"a call past its timeout raises {type(error).__name__}")


async def headers(nc: NATS) -> None:
    orders = ec.OrderServiceClient(nc)
    notifications = ec.NotificationServiceClient(nc)
    requests = await nc.subscribe("order_service.rpc.process_payment")
    await orders.process_payment("py_plain", 1.0)
    msg = await requests.next_msg(timeout=5)
    check(not msg.headers, "a plain call sends no headers", msg.headers)
    await orders.process_payment("py_short", 1.0, timeout=5)
    msg = await requests.next_msg(timeout=5)
    deadline = int((msg.headers or {}).get("Natsgen-Deadline-Ms", "0"))
    check(0 < deadline <= 5000 and set(msg.headers or {}) == {"Natsgen-Deadline-Ms"},
          "a shorter timeout sends only Natsgen-Deadline-Ms", msg.headers)
    ctx = rt.Context.root(nc)
    await orders.with_context(ctx).process_payment("py_nested", 1.0)
    msg = await requests.next_msg(timeout=5)
    sent = msg.headers or {}
    check(sent.get("Natsgen-Caller-Chain") == ctx.call_id
          and sent.get("traceparent", "").split("-")[1:2] == [f"{ctx.trace.trace_id:032x}"],
          "a call in a context carries the caller chain and the trace", sent)
    await requests.unsubscribe()

    calls = await nc.subscribe("notification_service.async.send_email")
    await notifications.send_email("py_a@example.com", "a", "b")
    msg = await calls.next_msg(timeout=5)
    sent = msg.headers or {}
    check(set(sent) == {"Nats-Msg-Id"} and sent["Nats-Msg-Id"].startswith("send_email:"),
          "an async call without a key sends only Nats-Msg-Id = send_email:<call id>", sent)
    await notifications.send_email("py_b@example.com", "a", "b", idempotency_key="py-key-1")
    msg = await calls.next_msg(timeout=5)
    sent = msg.headers or {}
    check(sent.get("Nats-Msg-Id") == "send_email:py-key-1" and "Natsgen-Call-Id" in sent,
          "an async call with a key sends Nats-Msg-Id = send_email:<key> and a call id", sent)
    await calls.unsubscribe()


async def events(nc: NATS) -> None:
    events = ec.Events(nc)
    now = datetime.now(timezone.utc)
    order = ec.Order(order_id=f"py_evt_{uuid.uuid4().hex[:6]}", user_id="py", items=[item("A", "A", 1, 1.0)],
                     total=1.0, status=ec.OrderStatus.CREATED, created_at=now)
    reactions = [("inventory_service", "reserve_inventory"), ("email_service", "send_order_confirmation"),
                 ("analytics_service", "track_order")]
    before = {r: (await stats(nc, r[0])).get(r[1], 0) for r in reactions}
    await events.orders_created(order)
    for service, handler in reactions:
        await processed(nc, service, handler, before[(service, handler)],
                        f"orders.created from Python reaches {service}.{handler}")

    cases: list[tuple[str, str, Any]] = [
        ("inventory_service", "release_inventory",
         events.orders_cancelled(ec.OrdersCancelled(order_id=order.order_id, reason="py"))),
        ("error_handling_service", "handle_email_failure",
         events.emails_failed(ec.EmailsFailed(recipient="x@example.com", subject="s", error="py"))),
        ("batch_monitor", "on_item_processed",
         events.batch_item_processed(ec.BatchItemProcessed(item_id="py", result=1.0))),
    ]
    for service, handler, publish in cases:
        before_one = (await stats(nc, service)).get(handler, 0)
        await publish
        await processed(nc, service, handler, before_one, f"an event from Python reaches {service}.{handler}")
    await events.emails_sent(ec.EmailsSent(recipient="x@example.com", subject="s", sent_at=now))
    await events.shipping_scheduled(ec.ShippingScheduled(order_id="py", address="a"))
    check(True, "every event of the package publishes")


async def walkthrough(nc: NATS) -> None:
    """The walkthrough's sections 1 (synchronous RPC), 3 (events) and 6 (error handling)."""
    orders = ec.OrderServiceClient(nc)
    notifications = ec.NotificationServiceClient(nc)

    print("1. SYNCHRONOUS RPC PATTERN")
    payment = await orders.process_payment("order_123", 99.99)
    check(payment.status is ec.PaymentStatus.COMPLETED and payment.transaction_id.startswith("txn_")
          and payment.amount == 99.99, f"sync: payment completed: {payment.transaction_id}", payment)

    print("3. EVENT-DRIVEN PATTERN")
    reactions = [("inventory_service", "reserve_inventory"), ("email_service", "send_order_confirmation"),
                 ("analytics_service", "track_order")]
    before = {r: (await stats(nc, r[0])).get(r[1], 0) for r in reactions}
    order = await orders.create_order("user_456", [
        item("LAPTOP-1", "Laptop sleeve", 1, 29.99), item("MOUSE-2", "Wireless mouse", 2, 49.99),
    ])
    check(len(order.items) == 2 and abs(order.total - 129.97) < 1e-9, f"events: order created: {order.order_id}", order)
    for service, handler in reactions:
        await processed(nc, service, handler, before[(service, handler)], f"events: {service} reacted")

    print("6. ERROR HANDLING")
    order = await orders.create_order("user_321", [item("TV-85", '85" television', 5, 2_500.0)])
    try:
        await orders.process_payment(order.order_id, order.total)
        check(False, "errors: a payment over the card limit is declined", "accepted")
    except ec.PaymentDeclined as declined:
        reason = declined.reason
        check(True, f"errors: PaymentDeclined: {reason}")
    released = (await stats(nc, "inventory_service")).get("release_inventory", 0)
    cancelled = await orders.cancel_order(order.order_id, f"payment declined: {reason}")
    check(cancelled.status is ec.OrderStatus.CANCELLED, f"errors: order {cancelled.order_id} is cancelled", cancelled)
    await processed(nc, "inventory_service", "release_inventory", released, "errors: the inventory is released")
    failed = await nc.subscribe("emails.failed")
    handled = (await stats(nc, "error_handling_service")).get("handle_email_failure", 0)
    await notifications.send_email("invalid-user@example.com", "Your receipt", "Thank you for your order.")
    await next_matching(failed, "recipient", "invalid-user@example.com")
    check(True, "errors: the invalid address leads to emails.failed")
    await processed(nc, "error_handling_service", "handle_email_failure", handled,
                    "errors: error_handling_service handled the failure")
    await failed.unsubscribe()


async def main(url: str) -> None:
    nc = await nats.connect(url)
    await every_method(nc)
    await errors(nc)
    await headers(nc)
    await events(nc)
    await walkthrough(nc)
    await nc.drain()
    print(f"{passed} passed, 0 failed")


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1]))
    except AssertionError as error:
        print(f"not ok - {error}")
        print(f"{passed} passed, 1 failed")
        sys.exit(1)
