//! A router link at the realm: a link session that asks in HELLO (`_wampmesh.attach`) is
//! attached to the link channel and the invoke procedure at join, without SUBSCRIBE/REGISTER;
//! one that does not ask, or that is not a link, is not.

use super::*;
use crate::router::mesh::{CHANNEL_ID, LINK_ROLE};

fn joining(n: u64, role: &str, attach_link: bool) -> SessionInfo {
    SessionInfo {
        authid: format!("node{n}"),
        attach_link,
        ..session(n, role)
    }
}

/// Channel EVENTs (the link's fixed subscription id) sent to session `n`.
fn channel_events(sent: &[(u64, Message)], n: u64) -> usize {
    sent.iter()
        .filter(|(to, m)| {
            *to == n
                && matches!(m, Message::Event { subscription, .. } if subscription.get() == CHANNEL_ID)
        })
        .count()
}

/// A fixture with a local subscriber, so that the realm has interest to advertise.
fn with_interest() -> Fixture {
    let mut f = Fixture::new();
    f.join(1, "member");
    f.subscribe(1, "com.example.topic", "exact");
    f.sent();
    f
}

#[test]
fn a_link_that_asks_is_attached_at_join() {
    let mut f = with_interest();
    f.realm
        .join(joining(2, LINK_ROLE, true), &mut f.out)
        .expect("the link joins");
    let sent = f.sent();
    assert!(
        channel_events(&sent, 2) >= 1,
        "the interest table goes out on the channel at join: {sent:?}"
    );
}

#[test]
fn a_link_that_does_not_ask_waits_for_its_subscribe() {
    let mut f = with_interest();
    f.realm
        .join(joining(2, LINK_ROLE, false), &mut f.out)
        .expect("the link joins");
    let sent = f.sent();
    assert_eq!(
        channel_events(&sent, 2),
        0,
        "nothing before SUBSCRIBE: {sent:?}"
    );
}

#[test]
fn only_the_link_role_is_attached() {
    let mut f = with_interest();
    f.realm
        .join(joining(2, "member", true), &mut f.out)
        .expect("a member joins");
    let sent = f.sent();
    assert_eq!(
        channel_events(&sent, 2),
        0,
        "a client is never attached: {sent:?}"
    );
    f.publish(1, 1, Dict::new(), "com.example.topic", Payload::default());
    assert_eq!(channel_events(&f.sent(), 2), 0);
}
