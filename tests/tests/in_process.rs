//! Unit tests without a server: generated servers served by `natsgen::testing::InProcess` and
//! called through their generated clients, handlers called directly with a test `Context`, and
//! a client substituted with a hand-written and a `mockall` implementation of its generated
//! `<Service>Api` trait. Nothing here starts a nats-server or opens a connection: this file
//! uses none of the real-server harness.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use natsgen::codegen::EndpointKind;
use natsgen::testing::InProcess;
use natsgen::{CallError, CallOptions, Context, ServiceError};
use natsgen_tests::store::till::PayError;
use natsgen_tests::store::{
    self, Bank, BankApi, BankClient, BankServer, Dispatch, DispatchServer, Order, Post, PostClient,
    PostServer, Receipt, StoreShipped, TallyRoll, TallyRollRecordEvent, TallyRollServer, Till,
    TillClient, TillServer,
};

const PATIENCE: Duration = Duration::from_secs(20);

/// Bounds a wait, so a broken in-process dispatch fails the test instead of hanging it.
async fn within<F: IntoFuture>(future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future.into_future())
        .await
        .expect("finished in time")
}

struct TillImpl;

impl Till for TillImpl {
    async fn create(
        &self,
        ctx: &Context,
        user_id: String,
        total: f64,
    ) -> Result<Order, ServiceError> {
        let order = Order {
            order_id: format!("order_of_{user_id}"),
            user_id,
            total,
            tenant: ctx.header("X-Tenant").map(str::to_owned),
        };
        ctx.emit::<store::Events>().store_ordered(&order).await?;
        Ok(order)
    }

    async fn pay(
        &self,
        _ctx: &Context,
        order_id: String,
        amount: f64,
    ) -> Result<Receipt, PayError> {
        if amount == 0.0 {
            return Err(PayError::Broke);
        }
        if amount > 100.0 {
            return Err(PayError::Declined {
                reason: format!("{amount} is over the limit"),
            });
        }
        Ok(Receipt {
            order_id,
            charged: amount,
        })
    }

    async fn crash(&self, _ctx: &Context) -> Result<String, ServiceError> {
        panic!("the till is on fire")
    }

    async fn checkout(
        &self,
        ctx: &Context,
        user_id: String,
        total: f64,
    ) -> Result<Receipt, ServiceError> {
        let order = self.create(ctx, user_id, total).await?;
        Ok(ctx
            .client::<BankClient>()
            .charge(order.order_id, order.total)
            .await?)
    }
}

struct BankImpl;

impl Bank for BankImpl {
    async fn charge(
        &self,
        _ctx: &Context,
        order_id: String,
        amount: f64,
    ) -> Result<Receipt, ServiceError> {
        Ok(Receipt {
            order_id,
            charged: amount,
        })
    }
}

#[derive(Default)]
struct PostImpl {
    sent: Mutex<Vec<(String, u32)>>,
}

impl Post for PostImpl {
    async fn send(&self, ctx: &Context, to: String, text: String) -> Result<(), ServiceError> {
        self.sent
            .lock()
            .unwrap()
            .push((format!("{to}: {text}"), ctx.attempt()));
        if to.starts_with("bounce@") {
            return Err(ServiceError::internal("mailbox full"));
        }
        Ok(())
    }
}

struct DispatchImpl;

impl Dispatch for DispatchImpl {
    async fn ship(&self, ctx: &Context, event: Order) -> Result<(), ServiceError> {
        ctx.emit::<store::Events>()
            .store_shipped(&StoreShipped {
                order_id: event.order_id,
            })
            .await?;
        Ok(())
    }
}

#[derive(Default)]
struct TallyRollImpl {
    seen: Mutex<Vec<String>>,
}

impl TallyRoll for TallyRollImpl {
    async fn record(&self, ctx: &Context, event: TallyRollRecordEvent) -> Result<(), ServiceError> {
        let line = match event {
            TallyRollRecordEvent::StoreOrdered(order) => format!("ordered {}", order.order_id),
            TallyRollRecordEvent::StoreShipped(shipped) => {
                format!("shipped {}", shipped.order_id)
            }
        };
        self.seen
            .lock()
            .unwrap()
            .push(format!("{} {line}", ctx.subject()));
        Ok(())
    }
}

fn till_and_bank() -> InProcess {
    InProcess::new()
        .serve(TillServer::new(TillImpl))
        .serve(BankServer::new(BankImpl))
}

#[tokio::test]
async fn an_rpc_call_returns_its_result_and_its_events_are_captured() {
    let services = till_and_bank();
    let till: TillClient = services.client();

    let order = within(till.create("ada".into(), 12.5).header("X-Tenant", "acme"))
        .await
        .unwrap();
    assert_eq!(order.order_id, "order_of_ada");
    assert_eq!(order.total, 12.5);
    assert_eq!(
        order.tenant.as_deref(),
        Some("acme"),
        "the handler saw the call's header"
    );

    let events = services.events();
    assert_eq!(events.len(), 1);
    let ordered: Vec<Order> = events.payloads("store.ordered").unwrap();
    assert_eq!(ordered, [order]);
    let captured = &events.all()[0];
    assert_eq!(
        (captured.package, captured.topic),
        ("store", "store.ordered")
    );
    assert!(captured.event_id().is_some_and(|id| !id.is_empty()));
}

#[tokio::test]
async fn declared_errors_arrive_typed() {
    let services = till_and_bank();
    let till: TillClient = services.client();

    let receipt = within(till.pay("o1".into(), 40.0)).await.unwrap();
    assert_eq!(receipt.charged, 40.0);

    match within(till.pay("o1".into(), 400.0)).await {
        Err(CallError::Service(PayError::Declined { reason })) => {
            assert_eq!(reason, "400 is over the limit");
        }
        other => panic!("expected Declined, got {other:?}"),
    }
    match within(till.pay("o1".into(), 0.0)).await {
        Err(CallError::Service(PayError::Broke)) => {}
        other => panic!("expected Broke, got {other:?}"),
    }
}

#[tokio::test]
async fn a_body_that_does_not_decode_is_a_bad_request() {
    let services = till_and_bank();

    let error = within(services.request("till.rpc.pay", r#"{"order_id": 5}"#))
        .await
        .unwrap_err();
    let CallError::Service(error) = error else {
        panic!("expected a service error, got {error:?}");
    };
    assert_eq!(
        (error.kind(), error.code()),
        ("bad_request", 400),
        "{error}"
    );

    let reply = within(services.request("till.rpc.pay", r#"{"order_id":"o1","amount":2}"#))
        .await
        .unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["result"]["charged"], 2.0);

    let unknown = within(services.request("till.rpc.refund", "{}")).await;
    assert!(
        matches!(unknown, Err(CallError::Protocol(_))),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn a_panicking_handler_is_an_internal_error_without_its_message() {
    let services = till_and_bank();
    let till: TillClient = services.client();

    let error = within(till.crash()).await.unwrap_err();
    let CallError::Service(error) = error else {
        panic!("expected a service error, got {error:?}");
    };
    assert_eq!((error.kind(), error.code()), ("internal", 500));
    // As over NATS: the caller gets the call id to look for, not the panic's text.
    assert!(!error.message().contains("on fire"), "{error}");
    assert!(error.message().contains("call id"), "{error}");

    // The service keeps serving.
    assert!(within(till.pay("o1".into(), 1.0)).await.is_ok());
}

#[tokio::test]
async fn nested_calls_reach_the_services_served_alongside() {
    let services = till_and_bank();
    let till: TillClient = services.client();
    let receipt = within(till.checkout("bo".into(), 30.0)).await.unwrap();
    assert_eq!(receipt.order_id, "order_of_bo");
    assert_eq!(receipt.charged, 30.0);

    // Without the bank, the nested call finds no service, as with no instance running.
    let alone = InProcess::new().serve(TillServer::new(TillImpl));
    let till: TillClient = alone.client();
    let error = within(till.checkout("bo".into(), 30.0)).await.unwrap_err();
    assert!(
        matches!(&error, CallError::Service(e) if e.kind() == "internal"),
        "{error:?}"
    );
    let bank: BankClient = alone.client();
    let error = within(bank.charge("o".into(), 1.0)).await.unwrap_err();
    assert!(
        matches!(
            error,
            CallError::ServiceUnavailable {
                service: "bank",
                method: "charge"
            }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn async_calls_run_their_handler_and_settle_reports_how_it_ended() {
    let post = Arc::new(PostImpl::default());
    let services = InProcess::new().serve(PostServer::from_arc(Arc::clone(&post)));
    let client: PostClient = services.client();

    within(client.send("ada@example.com".into(), "hello".into()))
        .await
        .unwrap();
    within(
        client
            .send("bounce@example.com".into(), "hello".into())
            .idempotency_key("bounce-1"),
    )
    .await
    .unwrap();

    let mut handled = within(services.settle()).await;
    handled.sort_by_key(|h| h.attempts);
    assert_eq!(handled.len(), 2, "{handled:?}");
    assert_eq!(handled[0].kind, EndpointKind::Async);
    assert_eq!((handled[0].service, handled[0].endpoint), ("post", "send"));
    assert!(handled[0].result.is_ok());
    assert_eq!(handled[0].attempts, 1);
    // Retried up to the schema's max_attempts (3), then it would be dead-lettered.
    assert_eq!(handled[1].attempts, 3);
    let error = handled[1].result.as_ref().unwrap_err();
    assert_eq!(error.message(), "mailbox full", "the service's own view");

    let sent = post.sent.lock().unwrap().clone();
    let bounced: Vec<u32> = sent
        .iter()
        .filter(|(line, _)| line.starts_with("bounce@"))
        .map(|(_, attempt)| *attempt)
        .collect();
    assert_eq!(bounced, [1, 2, 3], "each retry sees its attempt number");

    let calls = services.async_calls();
    assert_eq!(calls.len(), 2);
    let params: serde_json::Value = calls[1].params().unwrap();
    assert_eq!(params["to"], "bounce@example.com");
    assert_eq!(calls[1].header("Nats-Msg-Id"), Some("send:bounce-1"));

    assert!(within(services.settle()).await.is_empty(), "reported once");
}

#[tokio::test]
async fn events_reach_their_handlers_and_the_handlers_events_too() {
    let tally = Arc::new(TallyRollImpl::default());
    let services = till_and_bank()
        .serve(DispatchServer::new(DispatchImpl))
        .serve(TallyRollServer::from_arc(Arc::clone(&tally)));
    let till: TillClient = services.client();
    within(till.create("cy".into(), 3.0)).await.unwrap();

    // store.ordered → dispatch.ship (emits store.shipped) and tally_roll.record; then
    // store.shipped → tally_roll.record. `settle` waits for the whole chain.
    let handled = within(services.settle()).await;
    let mut ran: Vec<(&str, &str, String)> = handled
        .iter()
        .map(|h| (h.service, h.endpoint, h.subject.clone()))
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        [
            ("dispatch", "ship", "store.ordered".to_owned()),
            ("tally_roll", "record", "store.ordered".to_owned()),
            ("tally_roll", "record", "store.shipped".to_owned()),
        ]
    );
    assert!(handled.iter().all(|h| h.result.is_ok()), "{handled:?}");
    let mut seen = tally.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            "store.ordered ordered order_of_cy",
            "store.shipped shipped order_of_cy"
        ]
    );
    let shipped: Vec<StoreShipped> = services.events().payloads("store.shipped").unwrap();
    assert_eq!(shipped[0].order_id, "order_of_cy");
}

#[tokio::test]
async fn events_the_test_emits_are_captured_and_handled() {
    let tally = Arc::new(TallyRollImpl::default());
    let services = InProcess::new().serve(TallyRollServer::from_arc(Arc::clone(&tally)));
    services
        .emit::<store::Events>()
        .store_shipped(&StoreShipped {
            order_id: "o9".into(),
        })
        .await
        .unwrap();
    let handled = within(services.settle()).await;
    assert_eq!(handled.len(), 1);
    assert_eq!(handled[0].kind, EndpointKind::Event);
    assert_eq!(
        tally.seen.lock().unwrap().as_slice(),
        ["store.shipped shipped o9"]
    );
    assert_eq!(services.events().on("store.shipped").count(), 1);
}

#[tokio::test]
async fn a_handler_called_directly_with_a_test_context() {
    let services = InProcess::new();
    let ctx = services
        .context_builder()
        .endpoint("till", "create")
        .header("X-Tenant", "globex")
        .call_id("test-call-1")
        .timeout(Duration::from_secs(5))
        .build();
    assert_eq!(ctx.call_id(), "test-call-1");
    assert!(ctx.deadline().is_some());
    assert!(ctx.connection().is_none(), "no connection behind it");

    let order = TillImpl.create(&ctx, "di".into(), 8.0).await.unwrap();
    assert_eq!(order.tenant.as_deref(), Some("globex"));
    let ordered: Vec<Order> = services.events().payloads("store.ordered").unwrap();
    assert_eq!(ordered, [order]);

    // A client from the context calls the services served here: none, so no responders.
    let error = TillImpl
        .checkout(&services.context(), "di".into(), 8.0)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), "internal");
    assert!(error.message().contains("bank"), "{error}");

    let receipt = TillImpl.pay(&ctx, "o1".into(), 1.0).await.unwrap();
    assert_eq!(receipt.charged, 1.0);
}

#[tokio::test]
async fn middleware_runs_in_process_too() {
    let services = till_and_bank().intercept(|ctx| match ctx.header("Authorization") {
        Some("Bearer ok") => Ok(()),
        _ => Err(ServiceError::new("unauthenticated", 401, "no valid token")),
    });
    let till: TillClient = services.client();
    let error = within(till.pay("o1".into(), 1.0)).await.unwrap_err();
    match error {
        CallError::Service(PayError::Internal(error)) => {
            assert_eq!((error.kind(), error.code()), ("unauthenticated", 401));
        }
        other => panic!("expected unauthenticated, got {other:?}"),
    }
    let receipt = within(
        till.pay("o1".into(), 1.0)
            .header("Authorization", "Bearer ok"),
    )
    .await
    .unwrap();
    assert_eq!(receipt.charged, 1.0);
}

/// Code under test that calls the bank: generic over the generated `BankApi` trait, so tests can
/// hand it the in-process client, a hand-written fake or a mockall mock.
async fn charge_twice(bank: &impl BankApi, order_id: &str) -> Result<f64, CallError> {
    let first = bank
        .charge(order_id.into(), 1.0, CallOptions::new())
        .await?;
    let second = bank
        .charge(order_id.into(), 2.0, CallOptions::new())
        .await?;
    Ok(first.charged + second.charged)
}

/// A hand-written fake of the bank: records the calls, answers from a rule.
#[derive(Default)]
struct FakeBank {
    calls: Mutex<Vec<(String, f64)>>,
}

impl BankApi for FakeBank {
    async fn charge(
        &self,
        order_id: String,
        amount: f64,
        _options: CallOptions,
    ) -> Result<Receipt, CallError> {
        self.calls.lock().unwrap().push((order_id.clone(), amount));
        Ok(Receipt {
            order_id,
            charged: amount * 10.0,
        })
    }
}

#[tokio::test]
async fn a_client_substituted_with_a_hand_written_fake() {
    let fake = FakeBank::default();
    assert_eq!(charge_twice(&fake, "o1").await.unwrap(), 30.0);
    assert_eq!(
        fake.calls.lock().unwrap().as_slice(),
        [("o1".to_owned(), 1.0), ("o1".to_owned(), 2.0)]
    );

    // The same code over the in-process service.
    let services = InProcess::new().serve(BankServer::new(BankImpl));
    let bank: BankClient = services.client();
    assert_eq!(within(charge_twice(&bank, "o1")).await.unwrap(), 3.0);
}

mockall::mock! {
    Bank {}
    impl BankApi for Bank {
        fn charge(
            &self,
            order_id: String,
            amount: f64,
            options: CallOptions,
        ) -> impl std::future::Future<Output = Result<Receipt, CallError>> + Send;
    }
}

#[tokio::test]
async fn a_client_substituted_with_a_mockall_mock() {
    let mut bank = MockBank::new();
    bank.expect_charge()
        .withf(|order_id, amount, _| order_id == "o1" && *amount == 1.0)
        .times(1)
        .returning(|order_id, amount, _| {
            Box::pin(std::future::ready(Ok(Receipt {
                order_id,
                charged: amount,
            })))
        });
    bank.expect_charge()
        .withf(|_, amount, _| *amount == 2.0)
        .times(1)
        .returning(|_, _, _| {
            Box::pin(std::future::ready(Err(CallError::Service(
                ServiceError::new("limit", 422, "too much"),
            ))))
        });
    let error = charge_twice(&bank, "o1").await.unwrap_err();
    assert!(
        matches!(&error, CallError::Service(e) if e.kind() == "limit"),
        "{error:?}"
    );
}
