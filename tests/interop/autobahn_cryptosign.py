#!/usr/bin/env python3
"""WAMP-Cryptosign interop: the real autobahn-python client (asyncio, RawSocket over TCP) signs
with its own `AuthCryptoSign` authenticator (PyNaCl/libsodium) against a running wampmesh node.

Run by tests/interop_autobahn_cryptosign.rs with the pinned venv from
tests/interop/requirements.txt:

    python autobahn_cryptosign.py --port 8080 --serializer cbor

The node must have realm `realm1` and, on that listener, cryptosign principals
* `alice` (role `user`, allowed everything) with the public key of ALICE_SEED inline, and
* `bob` (role `user`) with the public key of BOB_SEED from an authorized-keys file.

It prints one line per check, `PASS [<serializer>] <check>` or
`FAIL [<serializer>] <check> -- <detail>`, then a summary, and exits 0 only if every check
passed (1 if any failed).
"""

import argparse
import asyncio
import binascii
import os
import sys

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.wamp import ApplicationSession  # noqa: E402
from autobahn.wamp import auth, cryptosign  # noqa: E402
from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer  # noqa: E402
from autobahn.wamp.types import ComponentConfig  # noqa: E402

# RFC 8032 section 7.1 TEST 1 and TEST 2 seeds (the node config carries their public keys).
ALICE_SEED = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
ALICE_PUBKEY = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
BOB_SEED = "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"

REALM = "realm1"
HOST = "127.0.0.1"
SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}
TIMEOUT = 10.0
NOT_AUTHORIZED = "wamp.error.not_authorized"


class CryptosignClient(ApplicationSession):
    """Joins with autobahn's own AuthCryptoSign authenticator; `tamper` may rewrite the
    signature it computed before it is sent."""

    def __init__(self, authenticator, tamper=None):
        super().__init__(ComponentConfig(realm=REALM))
        self._authenticator = authenticator
        self._tamper = tamper
        loop = asyncio.get_running_loop()
        self.joined = loop.create_future()
        self.challenges = []

    def onConnect(self):
        args = self._authenticator._args
        self.join(REALM, authmethods=["cryptosign"], authid=args.get("authid"),
                  authextra=self._authenticator.authextra)

    async def onChallenge(self, challenge):
        self.challenges.append(challenge)
        signature = await self._authenticator.on_challenge(self, challenge)
        return self._tamper(signature) if self._tamper else signature

    def onJoin(self, details):
        if not self.joined.done():
            self.joined.set_result(("joined", details))

    def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_result(("aborted", details))
        super().onLeave(details)

    def onDisconnect(self):
        if not self.joined.done():
            self.joined.set_result(("disconnected", None))


class Checks:
    def __init__(self, serializer):
        self.serializer = serializer
        self.failed = 0
        self.passed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"PASS [{self.serializer}] {name}")
        else:
            self.failed += 1
            print(f"FAIL [{self.serializer}] {name} -- {detail}")


async def attempt(port, serializer, authenticator, tamper=None):
    """Opens a connection and joins; returns (outcome, details, session)."""
    session = CryptosignClient(authenticator, tamper)
    factory = WampRawSocketClientFactory(lambda: session, serializer=SERIALIZERS[serializer]())
    loop = asyncio.get_running_loop()
    transport, _ = await asyncio.wait_for(loop.create_connection(factory, HOST, port), TIMEOUT)
    outcome, details = await asyncio.wait_for(session.joined, TIMEOUT)
    if outcome != "joined":
        transport.close()
    return outcome, details, session


def flip_last_signature_char(signature):
    """Changes one hex digit inside the 64-byte signature part."""
    c = "0" if signature[100] != "0" else "1"
    return signature[:100] + c + signature[101:]


async def run(port, serializer):
    c = Checks(serializer)
    c.check("PyNaCl is installed, so autobahn can sign (HAS_CRYPTOSIGN)", cryptosign.HAS_CRYPTOSIGN)
    key = cryptosign.CryptosignKey.from_bytes(binascii.a2b_hex(ALICE_SEED))
    c.check("autobahn derives the RFC 8032 TEST 1 public key", key.public_key() == ALICE_PUBKEY,
            key.public_key())

    # 1. alice with her authid: autobahn's signature (192 hex = signature || challenge).
    outcome, d, s = await attempt(port, serializer, auth.AuthCryptoSign(privkey=ALICE_SEED, authid="alice"))
    c.check("alice joins with cryptosign", outcome == "joined", f"{outcome} {d}")
    if outcome == "joined":
        c.check("WELCOME: authid alice, role user, method cryptosign, provider static",
                (d.authid, d.authrole, d.authmethod, d.authprovider)
                == ("alice", "user", "cryptosign", "static"),
                repr((d.authid, d.authrole, d.authmethod, d.authprovider)))
        ch = s.challenges[0].extra if s.challenges else {}
        c.check("CHALLENGE carries 64 hex characters and channel_binding null",
                len(ch.get("challenge", "")) == 64 and ch.get("channel_binding", "absent") is None,
                repr(ch))
        await s.register(lambda x: x * 2, "com.example.cryptosign.double")
        result = await asyncio.wait_for(s.call("com.example.cryptosign.double", 21), TIMEOUT)
        c.check("the cryptosign session can register and call", result == 42, repr(result))
        s.leave()

    # 2. No authid: the router names the principal the key belongs to.
    outcome, d, s = await attempt(port, serializer, auth.AuthCryptoSign(privkey=ALICE_SEED))
    c.check("without authid the router assigns the key's principal",
            outcome == "joined" and d.authid == "alice", f"{outcome} {d}")
    if outcome == "joined":
        s.leave()

    # 3. bob's key comes from the node's authorized-keys file.
    outcome, d, s = await attempt(port, serializer, auth.AuthCryptoSign(privkey=BOB_SEED, authid="bob"))
    c.check("bob (key from authorized_keys_file) joins", outcome == "joined" and d.authid == "bob",
            f"{outcome} {d}")
    if outcome == "joined":
        s.leave()

    # 4. The bare 128-hex signature (without the appended challenge) is accepted too.
    outcome, d, s = await attempt(port, serializer, auth.AuthCryptoSign(privkey=ALICE_SEED),
                                  tamper=lambda sig: sig[:128])
    c.check("a bare 128-hex signature is accepted", outcome == "joined", f"{outcome} {d}")
    if outcome == "joined":
        s.leave()

    # 5. Refusals: ABORT wamp.error.not_authorized.
    refusals = [
        ("an unknown key is refused",
         auth.AuthCryptoSign(privkey=binascii.b2a_hex(os.urandom(32)).decode()), None),
        ("alice's key claiming authid bob is refused",
         auth.AuthCryptoSign(privkey=ALICE_SEED, authid="bob"), None),
        ("a tampered signature is refused",
         auth.AuthCryptoSign(privkey=ALICE_SEED), flip_last_signature_char),
        ("a signature with another challenge appended is refused",
         auth.AuthCryptoSign(privkey=ALICE_SEED), lambda sig: sig[:128] + "00" * 32),
    ]
    for name, authenticator, tamper in refusals:
        outcome, d, _ = await attempt(port, serializer, authenticator, tamper)
        c.check(name, outcome == "aborted" and d.reason == NOT_AUTHORIZED,
                f"{outcome} {getattr(d, 'reason', None)} {getattr(d, 'message', None)}")

    # 6. Channel binding is not supported: refused before any challenge, with a clear message.
    binding = auth.AuthCryptoSign(privkey=ALICE_SEED, authextra={"channel_binding": "tls-unique"})
    outcome, d, s = await attempt(port, serializer, binding)
    message = getattr(d, "message", None) or ""
    c.check("a HELLO asking for tls-unique channel binding is refused, saying why",
            outcome == "aborted" and d.reason == NOT_AUTHORIZED and "channel binding" in message
            and not s.challenges,
            f"{outcome} {getattr(d, 'reason', None)} {message!r}")

    print(f"{c.passed} passed, {c.failed} failed")
    return c.failed == 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--serializer", choices=sorted(SERIALIZERS), default="json")
    args = parser.parse_args()
    ok = asyncio.run(run(args.port, args.serializer))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
