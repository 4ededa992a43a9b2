#!/usr/bin/env python3
"""An independent QUIC stack (aioquic) against a wampmesh node's QUIC listener.

One QUIC connection (ALPN ``wamp.2.quic``, server verified against a CA file), two
client-initiated bidirectional streams on it, each carrying its own RawSocket handshake
(``7F F1 00 00``: JSON, 16 MiB) and its own WAMP session on ``realm1``. Stream 1 subscribes,
stream 2 publishes ``--events`` events with ``acknowledge: true``, and stream 1 must receive
them all, in order. The WAMP side is written here by hand (no WAMP library), so nothing but
aioquic stands between this script and the bytes on the wire.

Prints one ``PASS: ...`` or ``FAIL: ...`` line per check and exits 0 only if every check
passed (1 if one failed, 2 on an unexpected error such as a timeout).

Run by ``tests/interop_aioquic.rs``; by hand, against a node with a QUIC listener:

    target/interop-venv/bin/python tests/interop/aioquic_client.py \\
        --port 8443 --cafile certs/ca.pem --server-name localhost
"""

import argparse
import asyncio
import json
import ssl
import struct
import sys

import aioquic
from aioquic.asyncio import QuicConnectionProtocol, connect
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import HandshakeCompleted

ALPN = "wamp.2.quic"
TOPIC = "com.example.aioquic.events"
# How long any one read from the router may take.
READ_TIMEOUT = 10.0

HELLO, WELCOME, ABORT, GOODBYE, ERROR = 1, 2, 3, 6, 8
PUBLISH, PUBLISHED, SUBSCRIBE, SUBSCRIBED, EVENT = 16, 17, 32, 33, 36
CALL, RESULT = 48, 50
FRAME_MESSAGE, FRAME_PING, FRAME_PONG = 0, 1, 2


class Checks:
    """Collects check outcomes, printing one line each."""

    def __init__(self):
        self.failed = 0

    def check(self, ok, what, detail=""):
        line = f"{'PASS' if ok else 'FAIL'}: {what}"
        if detail:
            line += f" ({detail})"
        print(line, flush=True)
        if not ok:
            self.failed += 1
        return ok


class WampQuicProtocol(QuicConnectionProtocol):
    """aioquic's stream plumbing, plus the ALPN the handshake settled on."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.alpn = None

    def quic_event_received(self, event):
        if isinstance(event, HandshakeCompleted):
            self.alpn = event.alpn_protocol
        super().quic_event_received(event)


class RawSocketStream:
    """One QUIC stream used as a RawSocket connection with the JSON serializer."""

    def __init__(self, name, reader, writer):
        self.name = name
        self.reader = reader
        self.writer = writer

    async def handshake(self):
        """Sends ``7F F1 00 00`` and returns the router's 4-byte reply."""
        self.writer.write(bytes([0x7F, 0xF1, 0x00, 0x00]))
        await self.writer.drain()
        return await asyncio.wait_for(self.reader.readexactly(4), READ_TIMEOUT)

    def send(self, message):
        payload = json.dumps(message, separators=(",", ":")).encode()
        header = struct.pack(">I", len(payload))
        header = bytes([FRAME_MESSAGE]) + header[1:]
        self.writer.write(header + payload)

    async def flush(self):
        await self.writer.drain()

    async def receive(self):
        """The next WAMP message, answering router PINGs on the way."""
        while True:
            header = await asyncio.wait_for(self.reader.readexactly(4), READ_TIMEOUT)
            kind = header[0] & 0x07
            length = int.from_bytes(header[1:], "big")
            payload = await asyncio.wait_for(self.reader.readexactly(length), READ_TIMEOUT)
            if kind == FRAME_PING:
                pong = bytes([FRAME_PONG]) + length.to_bytes(3, "big")
                self.writer.write(pong + payload)
                await self.writer.drain()
            elif kind == FRAME_MESSAGE:
                return json.loads(payload)

    async def expect(self, code):
        """The next message, which must have type ``code``."""
        message = await self.receive()
        if not message or message[0] != code:
            raise RuntimeError(f"{self.name}: expected message type {code}, got {message!r}")
        return message


async def open_session(protocol, name, checks):
    """Opens a new bidirectional stream, runs the RawSocket handshake and HELLO -> WELCOME."""
    reader, writer = await protocol.create_stream()
    stream_id = writer.get_extra_info("stream_id")
    stream = RawSocketStream(name, reader, writer)
    checks.check(
        stream_id is not None and stream_id % 4 == 0,
        f"{name}: opened client-initiated bidirectional QUIC stream",
        f"stream id {stream_id}",
    )
    reply = await stream.handshake()
    checks.check(
        reply[0] == 0x7F and reply[1] & 0x0F == 1 and reply[2:] == b"\x00\x00",
        f"{name}: RawSocket handshake accepted with JSON",
        f"reply {reply.hex()}",
    )
    roles = {"publisher": {}, "subscriber": {}, "caller": {}}
    stream.send([HELLO, "realm1", {"roles": roles, "agent": "aioquic-interop"}])
    await stream.flush()
    welcome = await stream.receive()
    ok = welcome[0] == WELCOME and isinstance(welcome[1], int) and 1 <= welcome[1] <= 2**53
    checks.check(ok, f"{name}: HELLO realm1 -> WELCOME", f"{welcome!r}"[:200])
    if not ok:
        raise RuntimeError(f"{name}: not welcomed: {welcome!r}")
    return stream, welcome[1]


async def session_transport(stream, session_id, request):
    """The `transport` dict the router reports for `session_id` (wamp.session.get)."""
    stream.send([CALL, request, {}, "wamp.session.get", [session_id]])
    await stream.flush()
    result = await stream.receive()
    if result[0] != RESULT or result[1] != request:
        raise RuntimeError(f"wamp.session.get {session_id}: {result!r}")
    return result[3][0].get("transport", {})


async def check_two_sessions(s1, id1, s2, id2, checks):
    """The realm sees two sessions, both on this one QUIC connection, on different streams."""
    checks.check(id1 != id2, "two streams are two WAMP sessions", f"{id1} != {id2}")
    t1 = await session_transport(s2, id1, 1)
    t2 = await session_transport(s2, id2, 2)
    checks.check(
        t1.get("protocol") == "quic" and t2.get("protocol") == "quic",
        "router reports both sessions on transport protocol quic",
        f"{t1.get('protocol')!r}, {t2.get('protocol')!r}",
    )
    same_connection = t1.get("connection") is not None and t1.get("connection") == t2.get(
        "connection"
    )
    checks.check(
        same_connection and t1.get("stream") != t2.get("stream"),
        "router reports one connection, two streams",
        f"connection {t1.get('connection')}/{t2.get('connection')}, "
        f"stream {t1.get('stream')}/{t2.get('stream')}",
    )


async def publish_and_receive(subscriber, publisher, count, checks):
    """SUBSCRIBE on one stream, `count` acknowledged PUBLISHes on the other, EVENTs in order."""
    subscriber.send([SUBSCRIBE, 1, {}, TOPIC])
    await subscriber.flush()
    subscribed = await subscriber.expect(SUBSCRIBED)
    subscription = subscribed[2]
    checks.check(subscribed[1] == 1, "stream 1: SUBSCRIBE -> SUBSCRIBED", f"id {subscription}")

    first_request = 10
    for i in range(count):
        publisher.send([PUBLISH, first_request + i, {"acknowledge": True}, TOPIC, [i]])
    await publisher.flush()
    acked = {}
    for _ in range(count):
        message = await publisher.receive()
        if message[0] == PUBLISHED:
            acked[message[1]] = message[2]
        else:
            checks.check(False, "stream 2: PUBLISHED for every PUBLISH", f"got {message!r}")
            return
    expected = set(range(first_request, first_request + count))
    checks.check(
        set(acked) == expected,
        f"stream 2: {count} PUBLISHED acknowledgements",
        f"{len(acked)} received",
    )

    received = []
    while len(received) < count:
        message = await subscriber.receive()
        if message[0] != EVENT:
            checks.check(False, "stream 1: only EVENTs while receiving", f"got {message!r}")
            return
        received.append(message)
    wrong_subscription = [m for m in received if m[1] != subscription]
    checks.check(not wrong_subscription, "stream 1: every EVENT names our subscription")
    values = [m[4][0] if len(m) > 4 and m[4] else None for m in received]
    misplaced = next((i for i, v in enumerate(values) if v != i), None)
    checks.check(
        misplaced is None,
        f"stream 1: {count} events arrived in publish order",
        "" if misplaced is None else f"position {misplaced} holds {values[misplaced]!r}",
    )
    publications = [m[2] for m in received]
    in_order = [acked.get(first_request + i) for i in range(count)]
    checks.check(
        publications == in_order,
        "stream 1: EVENT publication ids match the PUBLISHED ids",
    )


async def goodbye(stream, checks):
    stream.send([GOODBYE, {}, "wamp.close.normal"])
    await stream.flush()
    reply = await stream.receive()
    checks.check(
        reply[0] == GOODBYE and reply[2] == "wamp.close.goodbye_and_out",
        f"{stream.name}: GOODBYE answered",
        f"{reply!r}",
    )
    try:
        # Our FIN; the router may already have stopped reading (STOP_SENDING), which is fine.
        stream.writer.write_eof()
    except Exception:  # noqa: BLE001
        pass


async def run(args, checks):
    configuration = QuicConfiguration(is_client=True, alpn_protocols=[ALPN])
    configuration.server_name = args.server_name
    if args.insecure:
        configuration.verify_mode = ssl.CERT_NONE
    else:
        configuration.verify_mode = ssl.CERT_REQUIRED
        configuration.load_verify_locations(cafile=args.cafile)
    async with connect(
        args.host, args.port, configuration=configuration, create_protocol=WampQuicProtocol
    ) as protocol:
        alpn = protocol.alpn
        checks.check(alpn == ALPN, "QUIC connection up with ALPN wamp.2.quic", f"{alpn!r}")
        checks.check(
            not args.insecure,
            "server certificate verified against the CA file",
            args.cafile or "verification disabled",
        )
        stream1, id1 = await open_session(protocol, "stream 1", checks)
        stream2, id2 = await open_session(protocol, "stream 2", checks)
        await check_two_sessions(stream1, id1, stream2, id2, checks)
        await publish_and_receive(stream1, stream2, args.events, checks)
        await goodbye(stream1, checks)
        await goodbye(stream2, checks)
        protocol.close()
        await protocol.wait_closed()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-name", default="localhost", help="SNI and name to verify")
    parser.add_argument("--cafile", help="PEM CA that the node's certificate chains to")
    parser.add_argument("--insecure", action="store_true", help="skip server verification")
    parser.add_argument("--events", type=int, default=100)
    args = parser.parse_args()
    if not args.insecure and not args.cafile:
        parser.error("--cafile is required unless --insecure")
    checks = Checks()
    python = sys.version.split()[0]
    print(f"INFO: aioquic {aioquic.__version__}, Python {python}", flush=True)
    try:
        asyncio.run(run(args, checks))
    except Exception as error:  # noqa: BLE001 - every failure becomes a FAIL line
        checks.check(False, "ran to the end", f"{type(error).__name__}: {error}")
        sys.exit(2)
    print(f"{'OK' if checks.failed == 0 else 'FAILED'}: {checks.failed} check(s) failed")
    sys.exit(0 if checks.failed == 0 else 1)


if __name__ == "__main__":
    main()
