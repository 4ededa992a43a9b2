//! RawSocket without I/O: the 4-byte handshake and the frame codec (tokio-util `Decoder`/`Encoder`).
//!
//! Handshake `7F (L<<4 | S) 00 00`: L announces the largest message the sender will receive
//! (2^(9+L) bytes), S the serializer. Frames: `RRRR XTTT` + 24-bit length, TTT 0 = message,
//! 1 = PING, 2 = PONG; X is the 25th length bit, set only for a payload of exactly 2^24.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::wamp::Serializer;

pub const MAGIC: u8 = 0x7F;
/// The largest payload RawSocket can express (2^24 with the X bit).
pub const MAX_LENGTH: usize = 1 << 24;

/// Error codes of the handshake reply (`7F E0 00 00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeRefusal {
    SerializerUnsupported = 1,
    MaxLengthUnacceptable = 2,
    ReservedBitsUsed = 3,
    MaxConnectionCountReached = 4,
}

impl HandshakeRefusal {
    /// The 4 bytes to send before closing.
    pub fn reply(self) -> [u8; 4] {
        [MAGIC, (self as u8) << 4, 0, 0]
    }
}

/// What the server makes of a client's handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// Accept: `peer_max` is what the client will receive at most.
    Accept {
        serializer: Serializer,
        peer_max: usize,
    },
    /// Reply with the error code, then close.
    Refuse(HandshakeRefusal),
    /// Not RawSocket (bad magic, serializer 0): close without a reply.
    Fail,
}

/// The length exponent L for a maximum: the largest L with 2^(9+L) <= max (0..=15).
pub fn length_exponent(max: usize) -> u8 {
    let mut l = 0u8;
    while l < 15 && (1usize << (10 + l)) <= max {
        l += 1;
    }
    l
}

/// 2^(9+L).
pub fn length_from_exponent(l: u8) -> usize {
    1usize << (9 + (l & 0x0F))
}

/// Builds a client handshake or a server's success reply.
pub fn handshake(serializer: Serializer, max_receive: usize) -> [u8; 4] {
    [
        MAGIC,
        (length_exponent(max_receive) << 4) | serializer.code(),
        0,
        0,
    ]
}

/// Server side: judges the client's 4 bytes against the serializers this listener offers.
pub fn accept_handshake(request: [u8; 4], offered: &[Serializer]) -> HandshakeOutcome {
    if request[0] != MAGIC {
        return HandshakeOutcome::Fail;
    }
    if request[2] != 0 || request[3] != 0 {
        return HandshakeOutcome::Refuse(HandshakeRefusal::ReservedBitsUsed);
    }
    let code = request[1] & 0x0F;
    if code == 0 {
        return HandshakeOutcome::Fail;
    }
    match Serializer::from_code(code).filter(|s| offered.contains(s)) {
        Some(serializer) => HandshakeOutcome::Accept {
            serializer,
            peer_max: length_from_exponent(request[1] >> 4),
        },
        None => HandshakeOutcome::Refuse(HandshakeRefusal::SerializerUnsupported),
    }
}

/// Client side: reads the router's reply. Ok = the router's receive maximum.
pub fn read_handshake_reply(reply: [u8; 4], asked: Serializer) -> Result<usize, RawSocketError> {
    if reply[0] != MAGIC || reply[2] != 0 || reply[3] != 0 {
        return Err(RawSocketError::BadHandshake);
    }
    match reply[1] & 0x0F {
        0 => Err(RawSocketError::Refused(reply[1] >> 4)),
        s if s == asked.code() => Ok(length_from_exponent(reply[1] >> 4)),
        _ => Err(RawSocketError::BadHandshake),
    }
}

/// The three frame types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Message = 0,
    Ping = 1,
    Pong = 2,
}

/// One RawSocket frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub payload: Bytes,
}

/// Framing failures; each one fails the connection.
#[derive(Debug, thiserror::Error)]
pub enum RawSocketError {
    #[error("frame uses reserved bits")]
    ReservedBits,
    #[error("unknown frame type {0}")]
    UnknownFrameType(u8),
    #[error("frame of {size} bytes exceeds the negotiated maximum of {max}")]
    TooLong { size: usize, max: usize },
    #[error("malformed handshake reply")]
    BadHandshake,
    #[error("router refused the handshake with error code {0}")]
    Refused(u8),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Frame codec. `max_receive` is what we announced; `max_send` what the peer announced.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    pub max_receive: usize,
    pub max_send: usize,
}

impl FrameCodec {
    pub fn new(max_receive: usize, max_send: usize) -> Self {
        FrameCodec {
            max_receive: max_receive.min(MAX_LENGTH),
            max_send: max_send.min(MAX_LENGTH),
        }
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = RawSocketError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, RawSocketError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let head = src[0];
        if head & 0xF0 != 0 {
            return Err(RawSocketError::ReservedBits);
        }
        let kind = match head & 0x07 {
            0 => FrameKind::Message,
            1 => FrameKind::Ping,
            2 => FrameKind::Pong,
            other => return Err(RawSocketError::UnknownFrameType(other)),
        };
        let low = ((src[1] as usize) << 16) | ((src[2] as usize) << 8) | src[3] as usize;
        let size = if head & 0x08 != 0 {
            if low != 0 {
                return Err(RawSocketError::ReservedBits);
            }
            MAX_LENGTH
        } else {
            low
        };
        if size > self.max_receive {
            return Err(RawSocketError::TooLong {
                size,
                max: self.max_receive,
            });
        }
        if src.len() < 4 + size {
            src.reserve(4 + size - src.len());
            return Ok(None);
        }
        src.advance(4);
        let payload = src.split_to(size).freeze();
        Ok(Some(Frame { kind, payload }))
    }
}

impl FrameCodec {
    /// Writes one frame header + payload into `dst`, checking the peer's maximum.
    pub fn encode_parts(
        &self,
        kind: FrameKind,
        payload: &[u8],
        dst: &mut BytesMut,
    ) -> Result<(), RawSocketError> {
        let size = payload.len();
        // Never send exactly 2^24: older peers treat the X bit as reserved.
        if size > self.max_send || size >= MAX_LENGTH {
            return Err(RawSocketError::TooLong {
                size,
                max: self.max_send,
            });
        }
        dst.reserve(4 + size);
        dst.put_u8(kind as u8);
        dst.put_u8((size >> 16) as u8);
        dst.put_u16(size as u16);
        dst.extend_from_slice(payload);
        Ok(())
    }
}

impl Encoder<Frame> for FrameCodec {
    type Error = RawSocketError;
    fn encode(&mut self, frame: Frame, dst: &mut BytesMut) -> Result<(), RawSocketError> {
        self.encode_parts(frame.kind, &frame.payload, dst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autobahn_handshakes_are_accepted() {
        let all = Serializer::ALL;
        for (byte, s) in [
            (0xF1, Serializer::Json),
            (0xF2, Serializer::MsgPack),
            (0xF3, Serializer::Cbor),
        ] {
            assert_eq!(
                accept_handshake([0x7F, byte, 0, 0], &all),
                HandshakeOutcome::Accept {
                    serializer: s,
                    peer_max: 1 << 24
                }
            );
        }
    }

    #[test]
    fn handshake_errors() {
        let json = [Serializer::Json];
        assert_eq!(
            accept_handshake([0x7F, 0xF2, 0, 0], &json),
            HandshakeOutcome::Refuse(HandshakeRefusal::SerializerUnsupported)
        );
        assert_eq!(
            accept_handshake([0x7F, 0xF1, 0, 1], &json),
            HandshakeOutcome::Refuse(HandshakeRefusal::ReservedBitsUsed)
        );
        assert_eq!(
            accept_handshake([0x7F, 0xF0, 0, 0], &json),
            HandshakeOutcome::Fail
        );
        assert_eq!(
            accept_handshake([0x47, 0x45, 0x54, 0x20], &json),
            HandshakeOutcome::Fail
        );
        assert_eq!(
            HandshakeRefusal::SerializerUnsupported.reply(),
            [0x7F, 0x10, 0, 0]
        );
        assert_eq!(
            HandshakeRefusal::MaxLengthUnacceptable.reply(),
            [0x7F, 0x20, 0, 0]
        );
        assert_eq!(
            HandshakeRefusal::ReservedBitsUsed.reply(),
            [0x7F, 0x30, 0, 0]
        );
        assert_eq!(
            HandshakeRefusal::MaxConnectionCountReached.reply(),
            [0x7F, 0x40, 0, 0]
        );
    }

    #[test]
    fn length_exponents() {
        assert_eq!(length_exponent(1 << 24), 15);
        assert_eq!(length_exponent(512), 0);
        assert_eq!(length_exponent(1000), 0);
        assert_eq!(length_exponent(1024), 1);
        assert_eq!(handshake(Serializer::Cbor, 1 << 24), [0x7F, 0xF3, 0, 0]);
        assert_eq!(
            read_handshake_reply([0x7F, 0x10, 0, 0], Serializer::Json)
                .unwrap_err()
                .to_string(),
            "router refused the handshake with error code 1"
        );
    }

    #[test]
    fn frames_decode_split_and_reject_bad_headers() {
        let mut codec = FrameCodec::new(1024, 1024);
        let mut buf = BytesMut::new();
        codec
            .encode(
                Frame {
                    kind: FrameKind::Ping,
                    payload: Bytes::from_static(b"hi"),
                },
                &mut buf,
            )
            .unwrap();
        assert_eq!(&buf[..], &[1, 0, 0, 2, b'h', b'i']);
        let mut partial = BytesMut::from(&buf[..3]);
        assert!(codec.decode(&mut partial).unwrap().is_none());
        let f = codec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(f.kind, FrameKind::Ping);
        assert!(matches!(
            codec.decode(&mut BytesMut::from(&[0x10u8, 0, 0, 0][..])),
            Err(RawSocketError::ReservedBits)
        ));
        assert!(matches!(
            codec.decode(&mut BytesMut::from(&[0x03u8, 0, 0, 0][..])),
            Err(RawSocketError::UnknownFrameType(3))
        ));
        assert!(matches!(
            codec.decode(&mut BytesMut::from(&[0u8, 0, 4, 1][..])),
            Err(RawSocketError::TooLong { .. })
        ));
        assert!(codec
            .encode_parts(FrameKind::Message, &[0u8; 1025], &mut BytesMut::new())
            .is_err());
    }
}
