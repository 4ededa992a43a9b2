#!/usr/bin/env python3
"""One port, two transports: an autobahn-python RawSocket session and an autobahn-python
WebSocket session on the same wampmesh `websocket` listener (the listener tells them apart by
the first byte, 0x7F for RawSocket), in one realm, exchanging events both ways and calling
each other's procedures.

Run by tests/interop_autobahn_ws.rs:  python autobahn_shared_port.py --port 8090
Prints PASS/FAIL lines and a summary; exits 0 only if every check passed.
"""

import argparse
import asyncio
import sys

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp.protocol import ApplicationSession  # noqa: E402
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import ComponentConfig, PublishOptions  # noqa: E402

HOST = "127.0.0.1"
TIMEOUT = 5.0
failed = 0
passed = 0


def check(name, ok, detail=""):
    global failed, passed
    if ok:
        passed += 1
        print(f"PASS shared-port: {name}", flush=True)
    else:
        failed += 1
        print(f"FAIL shared-port: {name} -- {detail}", flush=True)


class Client(ApplicationSession):
    def __init__(self):
        super().__init__(ComponentConfig(realm="realm1"))
        self.joined = asyncio.get_running_loop().create_future()

    async def onJoin(self, details):
        self.joined.set_result(details)

    async def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_exception(ConnectionError(f"ABORT {details.reason}"))
        self.disconnect()


async def open_session(transport, serializer):
    loop = asyncio.get_running_loop()
    session = Client()
    if transport == "websocket":
        factory = WampWebSocketClientFactory(
            lambda: session, url=f"ws://{HOST}:{PORT}/ws", serializers=[serializer])
    else:
        factory = WampRawSocketClientFactory(lambda: session, serializer=serializer)
    await asyncio.wait_for(loop.create_connection(factory, HOST, PORT), TIMEOUT)
    details = await asyncio.wait_for(session.joined, TIMEOUT)
    return session, details


async def exchange(rs, ws, label):
    to_ws, to_rs = [], []
    await ws.subscribe(lambda x: to_ws.append(x), f"shared.{label}.to_ws")
    await rs.subscribe(lambda x: to_rs.append(x), f"shared.{label}.to_rs")
    await rs.register(lambda a, b: a + b, f"shared.{label}.rs_add")
    await ws.register(lambda a, b: a * b, f"shared.{label}.ws_mul")
    ack = PublishOptions(acknowledge=True)
    for i in range(3):
        await rs.publish(f"shared.{label}.to_ws", i, options=ack)
        await ws.publish(f"shared.{label}.to_rs", i * 10, options=ack)
    for _ in range(int(TIMEOUT / 0.01)):
        if len(to_ws) == 3 and len(to_rs) == 3:
            break
        await asyncio.sleep(0.01)
    check(f"{label}: RawSocket publishes, WebSocket receives in order", to_ws == [0, 1, 2], to_ws)
    check(f"{label}: WebSocket publishes, RawSocket receives in order", to_rs == [0, 10, 20], to_rs)
    product = await asyncio.wait_for(rs.call(f"shared.{label}.ws_mul", 6, 7), TIMEOUT)
    check(f"{label}: RawSocket calls a WebSocket callee", product == 42, product)
    total = await asyncio.wait_for(ws.call(f"shared.{label}.rs_add", 40, 2), TIMEOUT)
    check(f"{label}: WebSocket calls a RawSocket callee", total == 42, total)


async def main():
    pairs = [
        ("cbor-rs+json-ws", CBORSerializer(), JsonSerializer()),
        ("json-rs+msgpack-ws", JsonSerializer(), MsgPackSerializer()),
        ("msgpack-rs+cbor-ws", MsgPackSerializer(), CBORSerializer()),
    ]
    for label, rs_serializer, ws_serializer in pairs:
        rs, rs_details = await open_session("rawsocket", rs_serializer)
        ws, ws_details = await open_session("websocket", ws_serializer)
        check(f"{label}: both joined on port {PORT}",
              rs_details.session != ws_details.session, (rs_details, ws_details))
        check(f"{label}: the WebSocket session negotiated {ws_serializer.SERIALIZER_ID}",
              ws._transport._serializer.SERIALIZER_ID == ws_serializer.SERIALIZER_ID)
        await exchange(rs, ws, label)
        for s in (rs, ws):
            s.leave()
        await asyncio.sleep(0.05)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    PORT = parser.parse_args().port
    try:
        asyncio.run(asyncio.wait_for(main(), 30))
    except Exception as error:  # noqa: BLE001 - a failure with its reason
        check("the run completes", False, f"{type(error).__name__}: {error}")
    total = passed + failed
    verdict = "all checks passed" if failed == 0 and total > 0 else "FAILED"
    print(f"shared-port summary: {passed} of {total} checks ok, {failed} not ok -- {verdict}")
    sys.exit(0 if failed == 0 and total > 0 else 1)
