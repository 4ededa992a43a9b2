//! Harness for the RawSocket handshake and frame codec: the same stream decoded whole and in
//! arbitrary chunks must give the same frames and the same error, and every frame re-encodes.
//!
//! Input: 4 handshake bytes, one control byte (high nibble: the length exponent we announce;
//! low 3 bits: which serializers we offer; all 8 bits: the chunk-size seed), then the stream.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};
use wampmesh::rawsocket::{self, Frame, FrameCodec, HandshakeOutcome, MAX_LENGTH};
use wampmesh::wamp::Serializer;

/// What decoding a stream gave: the frames, then how it stopped (`None` = clean end).
type Decoded = (Vec<Frame>, Option<String>);

/// Runs the handshake checks and the codec checks on one input.
pub fn frames(data: &[u8]) {
    let Some((request, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let Some((&control, stream)) = rest.split_first() else {
        return;
    };
    let offered = offered_serializers(control);
    let peer_max = check_handshake(*request, &offered).unwrap_or(MAX_LENGTH);
    let codec = FrameCodec::new(rawsocket::length_from_exponent(control >> 4), peer_max);
    let whole = decode_all(codec.clone(), stream, &mut |_| stream.len());
    let mut seed = u32::from(control) | 0x100;
    let chunked = decode_all(codec.clone(), stream, &mut |_| chunk_len(&mut seed));
    assert_eq!(whole, chunked, "decoding in chunks changed the result");
    for frame in &whole.0 {
        assert!(
            frame.payload.len() <= codec.max_receive,
            "frame above our announced maximum"
        );
        check_reencode(frame);
    }
}

/// The serializers a listener offers, from the low 3 bits (none = all three).
fn offered_serializers(control: u8) -> Vec<Serializer> {
    let chosen: Vec<Serializer> = Serializer::ALL
        .into_iter()
        .filter(|s| control & (1 << s.index()) != 0)
        .collect();
    if chosen.is_empty() {
        Serializer::ALL.to_vec()
    } else {
        chosen
    }
}

/// The server's verdict must agree with what a client makes of the same bytes as a reply.
fn check_handshake(request: [u8; 4], offered: &[Serializer]) -> Option<usize> {
    match rawsocket::accept_handshake(request, offered) {
        HandshakeOutcome::Accept {
            serializer,
            peer_max,
        } => {
            assert!(
                offered.contains(&serializer),
                "accepted a serializer not offered"
            );
            assert!(
                (512..=MAX_LENGTH).contains(&peer_max),
                "peer maximum {peer_max} out of range"
            );
            let reply = rawsocket::read_handshake_reply(request, serializer);
            assert_eq!(
                reply.ok(),
                Some(peer_max),
                "client reads the same bytes differently"
            );
            let ours = rawsocket::handshake(serializer, peer_max);
            assert_eq!(
                rawsocket::accept_handshake(ours, offered),
                rawsocket::accept_handshake(request, offered)
            );
            Some(peer_max)
        }
        HandshakeOutcome::Refuse(refusal) => {
            let reply = refusal.reply();
            assert!(
                rawsocket::read_handshake_reply(reply, Serializer::Json).is_err(),
                "refusal read as success"
            );
            None
        }
        HandshakeOutcome::Fail => None,
    }
}

/// Decodes `stream` fed in pieces of `next_len` bytes, then signals end of stream.
fn decode_all(
    mut codec: FrameCodec,
    stream: &[u8],
    next_len: &mut dyn FnMut(usize) -> usize,
) -> Decoded {
    let mut buffer = BytesMut::new();
    let mut frames = Vec::new();
    let mut at = 0;
    loop {
        if at < stream.len() {
            let end = (at + next_len(at).max(1)).min(stream.len());
            buffer.extend_from_slice(&stream[at..end]);
            at = end;
        }
        let step = if at < stream.len() {
            codec.decode(&mut buffer)
        } else {
            codec.decode_eof(&mut buffer)
        };
        match step {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) if at < stream.len() => {}
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e.to_string())),
        }
    }
}

/// Chunk sizes 1..=64 from a xorshift generator.
fn chunk_len(state: &mut u32) -> usize {
    *state ^= *state << 13;
    *state ^= *state >> 17;
    *state ^= *state << 5;
    (*state % 64) as usize + 1
}

/// A decoded frame encodes (when the peer allows its size) and decodes back to itself.
fn check_reencode(frame: &Frame) {
    let mut codec = FrameCodec::new(MAX_LENGTH, MAX_LENGTH);
    let mut wire = BytesMut::new();
    match codec.encode(frame.clone(), &mut wire) {
        Ok(()) => {
            let back = codec.decode(&mut wire).expect("own frame must decode");
            assert_eq!(back.as_ref(), Some(frame), "frame changed on re-encoding");
            assert!(wire.is_empty(), "re-encoded frame left bytes behind");
        }
        Err(_) => assert!(
            frame.payload.len() >= MAX_LENGTH,
            "refused to encode a frame it decoded"
        ),
    }
}
