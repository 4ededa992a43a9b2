//! Publish (with and without acknowledgement), subscribe, events, revocation, backpressure.

use std::time::Duration;

use super::{connect, id, ints, joined, FakeRouter};
use crate::client::{ClientConfig, ClientError, Session, Subscription};
use crate::dict;
use crate::wamp::message::code;
use crate::wamp::{Dict, Id, Message, Payload, Value};

/// Subscribes to `topic`, playing the router's SUBSCRIBED with `subscription`.
async fn subscribe(
    session: &Session,
    router: &mut FakeRouter,
    topic: &str,
    subscription: u64,
) -> Subscription {
    let pending = {
        let session = session.clone();
        let topic = topic.to_owned();
        tokio::spawn(async move { session.subscribe(&topic, Dict::new()).await })
    };
    let Message::Subscribe {
        request, topic: t, ..
    } = router.recv().await
    else {
        panic!("expected SUBSCRIBE")
    };
    assert_eq!(t, topic);
    let subscription = id(subscription);
    router
        .send(Message::Subscribed {
            request,
            subscription,
        })
        .await;
    pending.await.unwrap().unwrap()
}

fn event(subscription: u64, publication: u64, payload: Payload) -> Message {
    Message::Event {
        subscription: id(subscription),
        publication: id(publication),
        details: Dict::new(),
        payload,
    }
}

#[tokio::test]
async fn acknowledged_publish_waits_and_request_ids_are_sequential() {
    let (session, mut router) = joined().await;
    let publish = tokio::spawn({
        let session = session.clone();
        async move {
            let options = dict! { "acknowledge" => true };
            session.publish("com.t", ints(&[1]), options).await
        }
    });
    let Message::Publish {
        request,
        options,
        topic,
        payload,
    } = router.recv().await
    else {
        panic!("expected PUBLISH")
    };
    assert_eq!(
        (request.get(), topic.as_str(), payload),
        (1, "com.t", ints(&[1]))
    );
    assert_eq!(options["acknowledge"], Value::Bool(true));
    router
        .send(Message::Published {
            request,
            publication: id(777),
        })
        .await;
    assert_eq!(publish.await.unwrap().unwrap(), Some(id(777)));

    let _sub = subscribe(&session, &mut router, "com.s", 5).await;
    session
        .publish("com.t", Payload::default(), Dict::new())
        .await
        .unwrap();
    let Message::Publish { request, .. } = router.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(request.get(), 3, "SUBSCRIBE took 2");
}

#[tokio::test]
async fn publish_error_is_a_wamp_error_showing_its_uri() {
    let (session, mut router) = joined().await;
    let publish = tokio::spawn(async move {
        let options = dict! { "acknowledge" => true };
        session.publish("com.t", Payload::default(), options).await
    });
    let Message::Publish { request, .. } = router.recv().await else {
        panic!("expected PUBLISH")
    };
    router
        .send(Message::Error {
            request_type: code::PUBLISH,
            request,
            details: Dict::new(),
            error: "wamp.error.not_authorized".into(),
            payload: Payload::default(),
        })
        .await;
    let error = publish.await.unwrap().unwrap_err();
    assert!(matches!(error, ClientError::Wamp { .. }));
    assert_eq!(error.to_string(), "wamp.error.not_authorized");
}

#[tokio::test]
async fn events_arrive_in_order_and_revocation_ends_the_stream() {
    let (session, mut router) = joined().await;
    let mut sub = subscribe(&session, &mut router, "com.tick", 5).await;
    assert_eq!(sub.id(), id(5));
    for n in 1..=100 {
        router.send(event(5, n, ints(&[n]))).await;
    }
    for n in 1..=100 {
        let event = sub.next().await.unwrap();
        assert_eq!((event.publication, event.payload), (id(n), ints(&[n])));
    }
    for n in 101..=103 {
        router.send(event(5, n, ints(&[n]))).await;
    }
    let mut batch = Vec::new();
    while batch.len() < 3 {
        assert!(sub.next_batch(&mut batch, 10).await > 0);
    }
    let publications: Vec<u64> = batch.iter().map(|e| e.publication.get()).collect();
    assert_eq!(publications, [101, 102, 103]);
    let details = Some(dict! { "subscription" => 5u64, "reason" => "wamp.close.killed" });
    router
        .send(Message::Unsubscribed {
            request: None,
            details,
        })
        .await;
    assert!(sub.next().await.is_none());
}

#[tokio::test]
async fn unsubscribe_and_drop_both_send_unsubscribe() {
    let (session, mut router) = joined().await;
    let sub = subscribe(&session, &mut router, "com.a", 5).await;
    let unsubscribe = tokio::spawn(sub.unsubscribe());
    let Message::Unsubscribe {
        request,
        subscription,
    } = router.recv().await
    else {
        panic!("expected UNSUBSCRIBE")
    };
    assert_eq!(subscription, id(5));
    router
        .send(Message::Unsubscribed {
            request: Some(request),
            details: None,
        })
        .await;
    unsubscribe.await.unwrap().unwrap();

    let sub = subscribe(&session, &mut router, "com.b", 6).await;
    drop(sub);
    let Message::Unsubscribe { subscription, .. } = router.recv().await else {
        panic!("expected UNSUBSCRIBE")
    };
    assert_eq!(subscription, id(6));
}

#[tokio::test]
async fn one_subscription_id_for_two_handles() {
    let (session, mut router) = joined().await;
    let mut first = subscribe(&session, &mut router, "com.a", 5).await;
    let mut second = subscribe(&session, &mut router, "com.a", 5).await;
    router.send(event(5, 1, ints(&[1]))).await;
    assert_eq!(first.next().await.unwrap().payload, ints(&[1]));
    assert_eq!(second.next().await.unwrap().payload, ints(&[1]));
    first.unsubscribe().await.unwrap(); // the other handle still needs it: nothing on the wire
    router.send(event(5, 2, ints(&[2]))).await;
    assert_eq!(second.next().await.unwrap().payload, ints(&[2]));
    drop(second);
    let Message::Unsubscribe { subscription, .. } = router.recv().await else {
        panic!("expected UNSUBSCRIBE")
    };
    assert_eq!(subscription, id(5));
}

#[tokio::test]
async fn full_queue_pauses_reading_but_keeps_writing() {
    let (session, mut router) = connect(ClientConfig::new("realm1").with_queue_capacity(2)).await;
    let mut slow = subscribe(&session, &mut router, "com.slow", 5).await;
    let mut other = subscribe(&session, &mut router, "com.other", 6).await;
    for n in 1..=10 {
        router.send(event(5, n, ints(&[n]))).await;
    }
    router.send(event(6, 99, ints(&[99]))).await;
    // The session is parked on `slow`, yet what we queue is still written.
    session
        .publish("com.out", Payload::default(), Dict::new())
        .await
        .unwrap();
    let Message::Publish { topic, .. } = router.recv().await else {
        panic!("expected PUBLISH")
    };
    assert_eq!(topic, "com.out");
    let early = tokio::time::timeout(Duration::from_millis(50), other.next()).await;
    assert!(early.is_err(), "events behind the full queue wait");
    for n in 1..=10 {
        assert_eq!(slow.next().await.unwrap().publication, id(n));
    }
    assert_eq!(other.next().await.unwrap().publication, id(99));
}

#[tokio::test]
async fn subscribe_error_and_oversized_publish() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let router = async {
        let mut router = FakeRouter::accept_with_max(server, 1024).await;
        router.welcome(42).await;
        router
    };
    let (session, mut router) =
        tokio::join!(Session::join(client, ClientConfig::new("realm1")), router);
    let session = session.unwrap();
    let big = Payload::args(vec![Value::from("x".repeat(2000))]);
    let error = session
        .publish("com.t", big, dict! { "acknowledge" => true })
        .await
        .unwrap_err();
    assert!(
        matches!(error, ClientError::MessageTooLarge { max: 1024, .. }),
        "{error:?}"
    );

    let pending = tokio::spawn({
        let session = session.clone();
        async move { session.subscribe("com..bad", Dict::new()).await }
    });
    let Message::Subscribe { request, .. } = router.recv().await else {
        panic!("expected SUBSCRIBE")
    };
    assert_eq!(
        request,
        Id::new(1).unwrap(),
        "the refused publish used no request id"
    );
    router
        .send(Message::Error {
            request_type: code::SUBSCRIBE,
            request,
            details: Dict::new(),
            error: "wamp.error.invalid_uri".into(),
            payload: Payload::default(),
        })
        .await;
    let error = pending.await.unwrap().unwrap_err();
    assert_eq!(error.uri(), Some("wamp.error.invalid_uri"));
}
