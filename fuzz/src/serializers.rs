//! Harness for the three WAMP serializers: decoding arbitrary bytes never panics, and a message
//! that decodes survives encode -> decode unchanged (what the router forwards is what it got).

use wampmesh::wamp::{Message, Serializer};

/// Decodes `data`; if it is a message, checks the round trip through `serializer`.
pub fn round_trip(serializer: Serializer, data: &[u8]) {
    let Ok(message) = serializer.decode(data) else {
        return;
    };
    let encoded = serializer.encode(&message).unwrap_or_else(|e| {
        panic!("{serializer:?}: cannot encode what it decoded: {e}\n{message:?}")
    });
    let again = serializer.decode(&encoded).unwrap_or_else(|e| {
        panic!("{serializer:?}: cannot decode what it encoded: {e}\n{message:?}")
    });
    let re_encoded = serializer.encode(&again).unwrap_or_else(|e| {
        panic!("{serializer:?}: cannot encode the second time: {e}\n{again:?}")
    });
    if has_nan(&message) {
        // NaN != NaN: compare the bytes instead.
        assert_eq!(
            encoded, re_encoded,
            "{serializer:?}: encoding with NaN is not stable"
        );
    } else {
        assert_eq!(
            message, again,
            "{serializer:?}: message changed on the round trip"
        );
        assert_eq!(
            encoded, re_encoded,
            "{serializer:?}: encoding is not stable"
        );
    }
}

/// A message that is not equal to itself holds a NaN somewhere.
#[allow(clippy::eq_op)]
fn has_nan(message: &Message) -> bool {
    message != message
}
