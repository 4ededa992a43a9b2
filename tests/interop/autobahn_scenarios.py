#!/usr/bin/env python3
"""Interop scenarios: the real autobahn-python client (asyncio, RawSocket over TCP, or
WebSocket with `--transport websocket`) against a running wampmesh node, or against two linked
nodes with the parties split between them.

Run by tests/interop_autobahn.rs (one node) and tests/interop_autobahn_mesh.rs (two linked
nodes) with the pinned venv from tests/interop/requirements.txt:

    python autobahn_scenarios.py --port 8080 --serializer cbor            # every scenario
    python autobahn_scenarios.py --port 8080 --serializer json --scenario rpc --scenario auth
    python autobahn_scenarios.py --port 8080 --port2 8081 --serializer msgpack   # two nodes
    python autobahn_scenarios.py --port 8090 --transport websocket --serializer json
    python autobahn_scenarios.py --selftest                               # no router needed

With `--port2` the parties of a scenario are split across the two nodes (node1 = --port,
node2 = --port2): subscribers on node2 and publishers on node1, callees on node2 and callers on
node1, shared registrations with a callee on each node. The per-node scenarios (session-level
features: auth, meta, errors, component) run once on each node, as `<scenario>@node1` and
`<scenario>@node2`. A `mesh` check runs first: interest crosses the link both ways. Interest
needs a moment to cross a link after SUBSCRIBE/REGISTER; the scenarios wait for it
deterministically (acknowledged probe publications until one arrives; calls of a barrier
procedure until they stop failing with no_such_procedure), never by sleeping. Without
`--port2` both "nodes" are the one node and every wait returns at once.

It prints one line per check, `PASS [<serializer>] <scenario>: <check>` or
`FAIL [<serializer>] <scenario>: <check> -- <detail>`, then a summary line, and exits 0 only if
every check passed (1 if any failed, 2 on bad usage).

The node (each node) must be configured as in tests/interop_autobahn.rs: realm `realm1`,
anonymous role `anonymous`, ticket principal alice/secret-ticket, WAMP-CRA users bob (unsalted)
and carol (salt "salt123", 1000 iterations, keylen 32), all allowed everything.

Two things autobahn-python no longer exposes are added on the wire here, on purpose:
* `disclose_me` (PUBLISH/CALL option, spec "publisher/caller identification"): autobahn >= 20
  dropped it from PublishOptions/CallOptions (Crossbar discloses by router config instead). We
  patch `marshal_options` so that messages to the URIs in DISCLOSE_ME_URIS carry it.
* CANCEL with an explicit mode: cancelling the asyncio future returned by `session.call` sends
  CANCEL without a mode (the router's default applies); for the `skip`, `kill` and `killnowait`
  checks we send `message.Cancel(request, mode=...)` through the session's transport, while the
  call's future stays pending so its outcome arrives through autobahn's normal API.
"""

import argparse
import asyncio
import collections
import json
import sys
import time
import traceback
import uuid

import txaio

txaio.use_asyncio()

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory  # noqa: E402
from autobahn.asyncio.websocket import WampWebSocketClientFactory  # noqa: E402
from autobahn.wamp import auth, message  # noqa: E402
from autobahn.wamp.exception import ApplicationError  # noqa: E402
from autobahn.wamp.protocol import ApplicationSession  # noqa: E402
from autobahn.wamp.serializer import (  # noqa: E402
    CBORSerializer,
    JsonSerializer,
    MsgPackSerializer,
)
from autobahn.wamp.types import (  # noqa: E402
    CallOptions,
    CallResult,
    ComponentConfig,
    PublishOptions,
    RegisterOptions,
    SubscribeOptions,
)

REALM = "realm1"
HOST = "127.0.0.1"
SERIALIZERS = {"json": JsonSerializer, "msgpack": MsgPackSerializer, "cbor": CBORSerializer}
JOIN_TIMEOUT = 10.0
WAIT_TIMEOUT = 5.0
ANSWER_TIMEOUT = 3.0  # for one request/answer on loopback; a miss is a failed check
SCENARIO_TIMEOUT = 30.0
MAX_ID = 2**53
VERBOSE = False

# Two linked nodes (--port2): which node a party joins. With one node both are that node.
NODE1, NODE2 = 0, 1
PROPAGATION_TIMEOUT = 10.0  # interest crossing an up link; a miss fails the scenario
LINK_UP_TIMEOUT = 20.0  # the first crossing, while the link may still be coming up
RETRY_INTERVAL = 0.02
PROBE = "__wampmesh_probe__"  # first argument of probe events (kept out of Events.items)

CANCELED = "wamp.error.canceled"
NO_SUCH_PROCEDURE = "wamp.error.no_such_procedure"
NOT_AUTHORIZED_REASONS = {"wamp.error.not_authorized", "wamp.error.authentication_failed"}

# ---------------------------------------------------------------------------------------------
# disclose_me on the wire (see the module docstring)

DISCLOSE_ME_URIS = set()


def _patch_disclose_me():
    for cls, uri_attr in ((message.Publish, "topic"), (message.Call, "procedure")):
        original = cls.marshal_options

        def marshal_options(self, _original=original, _uri_attr=uri_attr):
            options = _original(self)
            if getattr(self, _uri_attr) in DISCLOSE_ME_URIS:
                options["disclose_me"] = True
            return options

        cls.marshal_options = marshal_options


_patch_disclose_me()


class client_uri_check_disabled:
    """Context manager: lets autobahn send URIs it would refuse client-side, so that the
    router's own URI validation can be tested."""

    def __enter__(self):
        self._saved = message.check_or_raise_uri
        message.check_or_raise_uri = lambda value, *args, **kwargs: value
        return self

    def __exit__(self, *exc):
        message.check_or_raise_uri = self._saved
        return False


# ---------------------------------------------------------------------------------------------
# sessions


class JoinRefused(Exception):
    """The router answered HELLO (or AUTHENTICATE) with ABORT."""

    def __init__(self, details):
        super().__init__(f"ABORT {details.reason}: {details.message}")
        self.details = details


class Client(ApplicationSession):
    """One autobahn session that records what the router sent and exposes join/leave futures."""

    def __init__(self, realm, authmethods, authid, on_challenge):
        super().__init__(ComponentConfig(realm=realm))
        self._authmethods = authmethods
        self._authid = authid
        self._on_challenge = on_challenge
        loop = asyncio.get_running_loop()
        self.joined = loop.create_future()
        self.left = loop.create_future()
        self.challenges = []
        self.received = []  # every WAMP message from the router, in arrival order
        self.details = None

    def onConnect(self):
        self.join(self.config.realm, authmethods=self._authmethods, authid=self._authid)

    def onChallenge(self, challenge):
        self.challenges.append(challenge)
        if self._on_challenge is None:
            raise Exception(f"unexpected CHALLENGE for method {challenge.method}")
        return self._on_challenge(challenge)

    def onMessage(self, msg):
        self.received.append(msg)
        return super().onMessage(msg)

    def onUserError(self, fail, msg):
        # Handlers raising on purpose (e.g. on INTERRUPT) end up here; what matters reaches the
        # checks through the peer's answer, so keep stderr to one line unless --verbose.
        if VERBOSE:
            super().onUserError(fail, msg)
        else:
            print(f"autobahn user error ({msg}): {txaio.failure_message(fail)}", file=sys.stderr)

    async def onJoin(self, details):
        self.details = details
        if not self.joined.done():
            self.joined.set_result(details)

    async def onLeave(self, details):
        if not self.joined.done():
            self.joined.set_exception(JoinRefused(details))
        if not self.left.done():
            self.left.set_result(details)
        self.disconnect()

    def onDisconnect(self):
        if not self.joined.done():
            self.joined.set_exception(ConnectionError("transport closed before WELCOME or ABORT"))
        if not self.left.done():
            self.left.set_result(None)

    @property
    def session_id(self):
        return self.details.session

    def negotiated_serializer(self):
        return self._transport._serializer.SERIALIZER_ID

    def errors_for(self, request_type, request):
        return [
            m
            for m in self.received
            if isinstance(m, message.Error)
            and m.request_type == request_type
            and m.request == request
        ]


class Context:
    """Per-run settings plus the sessions opened by the current scenario (closed after it)."""

    def __init__(self, port, serializer, port2=None, transport="rawsocket"):
        self.ports = (port, port if port2 is None else port2)
        self.transport = transport
        self.mesh = port2 is not None
        self.serializer = serializer
        self.passed = 0
        self.failed = 0
        self.barriers = 0
        self.run_id = uuid.uuid4().hex[:8]  # keeps barrier URIs apart between runs
        self._open = []

    @property
    def port(self):
        return self.ports[NODE1]

    def url(self, node):
        """The URL autobahn's Component and WebSocket factory connect to."""
        scheme = "ws" if self.transport == "websocket" else "rs"
        return f"{scheme}://{HOST}:{self.ports[node]}" + ("/ws" if scheme == "ws" else "")

    @staticmethod
    def label(node):
        return f"node{node + 1}"

    async def open(self, authmethods=None, authid=None, on_challenge=None, realm=REALM, node=NODE1):
        """Connects to `node` and joins; raises JoinRefused on ABORT."""
        loop = asyncio.get_running_loop()
        session = Client(realm, authmethods, authid, on_challenge)
        if self.transport == "websocket":
            factory = WampWebSocketClientFactory(
                lambda: session, url=self.url(node), serializers=[SERIALIZERS[self.serializer]()]
            )
        else:
            factory = WampRawSocketClientFactory(
                lambda: session, serializer=SERIALIZERS[self.serializer]()
            )
        transport, _ = await asyncio.wait_for(
            loop.create_connection(factory, HOST, self.ports[node]), WAIT_TIMEOUT
        )
        self._open.append((session, transport))
        try:
            await asyncio.wait_for(session.joined, JOIN_TIMEOUT)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"no WELCOME or ABORT within {JOIN_TIMEOUT}s "
                f"({self.transport} handshake for {self.serializer} refused?)"
            ) from None
        return session

    async def refused(self, **kwargs):
        """Tries to join; returns the ABORT's CloseDetails, or None if the join succeeded."""
        try:
            await self.open(**kwargs)
        except JoinRefused as refused:
            return refused.details
        return None

    async def close_all(self):
        for session, transport in self._open:
            try:
                if session.is_attached():
                    session.leave()
                    await asyncio.wait_for(asyncio.shield(session.left), 2.0)
            except Exception:
                pass
            transport.close()
        self._open.clear()


class Checks:
    """Records and prints the checks of one scenario."""

    def __init__(self, ctx, scenario):
        self.ctx = ctx
        self.scenario = scenario

    def check(self, name, ok, detail=""):
        prefix = f"[{self.ctx.serializer}] {self.scenario}: {name}"
        if ok:
            self.ctx.passed += 1
            print(f"PASS {prefix}", flush=True)
        else:
            self.ctx.failed += 1
            print(f"FAIL {prefix} -- {detail}", flush=True)
        return ok

    def equal(self, name, actual, expected):
        return self.check(name, actual == expected, f"expected {expected!r}, got {actual!r}")

    def is_id(self, name, value):
        ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID
        return self.check(name, ok, f"expected an id in [1, 2^53], got {value!r}")

    def error_uri(self, name, error, expected):
        """`error` is what `call_error` returned; `expected` is a URI or a tuple of accepted URIs."""
        accepted = expected if isinstance(expected, tuple) else (expected,)
        wanted = " or ".join(accepted)
        if isinstance(error, ApplicationError):
            return self.check(
                name,
                error.error in accepted,
                f"expected ERROR {wanted}, got {error.error} args={list(error.args)}",
            )
        return self.check(name, False, f"expected ERROR {wanted}, got {error!r}")


async def wait_until(predicate, timeout=WAIT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


async def call_error(awaitable, timeout=ANSWER_TIMEOUT):
    """Awaits a request expected to fail; returns the ApplicationError, or a string describing
    what happened instead. `awaitable` may be a zero-argument callable making it (so that an
    exception raised while sending is caught too)."""
    try:
        if callable(awaitable):
            awaitable = awaitable()
        result = await asyncio.wait_for(awaitable, timeout)
    except ApplicationError as error:
        return error
    except asyncio.TimeoutError:
        return f"no answer within {timeout}s"
    except Exception as error:  # noqa: BLE001 - reported as the check's detail
        return f"{type(error).__name__}: {error}"
    return f"success: {result!r}"


def pending_call_request(session, future):
    for request, call in session._call_reqs.items():
        if call.on_reply is future:
            return request
    raise AssertionError("call future not found among the session's pending calls")


class Events:
    """An event handler that keeps (args, kwargs, details) of every event it gets."""

    def __init__(self):
        self.items = []
        self.probes = []  # events published by `until_delivered`, not looked at by checks

    def __call__(self, *args, details=None, **kwargs):
        if args and args[0] == PROBE:
            self.probes.append(list(args))
            return
        self.items.append((list(args), kwargs, details))

    def args(self):
        return [args for args, _, _ in self.items]

    def first_args(self):
        return [args[0] if args else None for args, _, _ in self.items]


DETAILS = SubscribeOptions(details=True)


# ---------------------------------------------------------------------------------------------
# waiting for interest to cross a router link (two nodes; with one node they return at once)


class NotPropagated(Exception):
    """Interest did not reach the other node in time (fails the scenario)."""


async def until_delivered(publisher, topic, *receivers, timeout=PROPAGATION_TIMEOUT):
    """Publishes acknowledged probe events to `topic` until every one of `receivers` (Events of
    subscriptions matching `topic`, possibly on another node) has got one. Events from one
    publisher arrive in order, so publications after this reach those subscriptions. Returns the
    number of probes sent."""
    deadline = time.monotonic() + timeout
    sent = 0
    while True:
        sent += 1
        await asyncio.wait_for(
            publisher.publish(topic, PROBE, sent, options=PublishOptions(acknowledge=True)),
            ANSWER_TIMEOUT,
        )
        if await wait_until(lambda: all(r.probes for r in receivers), 2.5 * RETRY_INTERVAL):
            return sent
        if time.monotonic() >= deadline:
            raise NotPropagated(f"no probe event on {topic} after {sent} acknowledged publications")


async def until_routed(ctx, callee, caller, timeout=PROPAGATION_TIMEOUT):
    """Waits until what `callee`'s node advertised so far is known at `caller`'s node: `callee`
    registers a fresh barrier procedure and `caller` calls it until the call stops failing with
    no_such_procedure. A node advertises its whole interest (subscriptions and registrations)
    as one versioned snapshot, in order, so everything registered or subscribed on `callee`'s
    node before the barrier is routed too. Returns the number of calls made."""
    ctx.barriers += 1
    procedure = f"com.example.barrier.{ctx.run_id}.{ctx.barriers}"
    registration = await callee.register(lambda: "barrier", procedure)
    deadline = time.monotonic() + timeout
    calls = 0
    try:
        while True:
            calls += 1
            try:
                await asyncio.wait_for(caller.call(procedure), ANSWER_TIMEOUT)
                return calls
            except ApplicationError as error:
                if error.error != NO_SUCH_PROCEDURE:
                    raise NotPropagated(f"barrier {procedure}: {error.error} {list(error.args)}")
            if time.monotonic() >= deadline:
                raise NotPropagated(f"{procedure} still unknown after {calls} calls in {timeout}s")
            await asyncio.sleep(RETRY_INTERVAL)
    finally:
        try:
            await asyncio.wait_for(registration.unregister(), ANSWER_TIMEOUT)
        except Exception:  # noqa: BLE001 - the barrier's own clean-up; the callee may be gone
            pass


# ---------------------------------------------------------------------------------------------
# scenarios


async def scenario_session(ctx, c):
    session = await ctx.open()
    details = session.details
    c.is_id("anonymous join gets a session id", details.session)
    c.equal("realm in WELCOME", details.realm, REALM)
    c.equal("authmethod anonymous", details.authmethod, "anonymous")
    c.equal("authrole anonymous", details.authrole, "anonymous")
    c.equal("negotiated serializer", session.negotiated_serializer(), ctx.serializer)
    aborted = await ctx.refused(realm="no.such.realm", node=NODE2)
    c.equal(
        "joining an unknown realm is aborted with wamp.error.no_such_realm",
        aborted.reason if aborted else "joined",
        "wamp.error.no_such_realm",
    )
    other = await ctx.open(node=NODE2)
    c.check("two sessions get different ids", other.session_id != session.session_id)


async def scenario_pubsub(ctx, c):
    topic = "com.example.pubsub"
    pub, s1, s2 = await ctx.open(), await ctx.open(node=NODE2), await ctx.open(node=NODE2)
    events = {"pub": Events(), "s1": Events(), "s2": Events()}
    for name, session in (("pub", pub), ("s1", s1), ("s2", s2)):
        subscription = await session.subscribe(events[name], topic, options=DETAILS)
        c.is_id(f"{name} subscribe returns a subscription id", subscription.id)
    s2_subscription = subscription
    await until_delivered(pub, topic, events["s1"], events["s2"])

    publication = await pub.publish(
        topic, 1, "two", color="red", n=3, options=PublishOptions(acknowledge=True)
    )
    c.is_id("publish with acknowledge returns a publication id", getattr(publication, "id", None))
    got = await wait_until(lambda: events["s1"].items and events["s2"].items)
    c.check("both subscribers get the event", got, f"s1={events['s1'].items} s2={events['s2'].items}")
    if got:
        args, kwargs, details = events["s1"].items[0]
        c.equal("subscriber gets args", args, [1, "two"])
        c.equal("subscriber gets kwargs", kwargs, {"color": "red", "n": 3})
        c.equal("event carries the PUBLISHED publication id", details.publication, publication.id)
        c.equal("publisher not disclosed without disclose_me", details.publisher, None)
        c.equal("second subscriber gets the same payload", events["s2"].items[0][:2], (args, kwargs))

    # Events from one publisher reach one subscriber in order, so once the marker published
    # with exclude_me=False has arrived, the first event can no longer be on its way.
    await pub.publish(topic, "marker-1", options=PublishOptions(acknowledge=True, exclude_me=False))
    got = await wait_until(lambda: ["marker-1"] in events["pub"].args())
    c.check("exclude_me=False delivers the event to its publisher", got, events["pub"].args())
    c.equal("publisher excluded from its own event by default", events["pub"].args(), [["marker-1"]])

    disclosed_topic = "com.example.pubsub.disclosed"
    DISCLOSE_ME_URIS.add(disclosed_topic)
    disclosed = Events()
    await s1.subscribe(disclosed, disclosed_topic, options=DETAILS)
    await until_delivered(pub, disclosed_topic, disclosed)
    await pub.publish(disclosed_topic, "who", options=PublishOptions(acknowledge=True))
    got = await wait_until(lambda: disclosed.items)
    c.equal(
        "disclose_me sets details.publisher to the publisher's session",
        disclosed.items[0][2].publisher if got else "no event",
        pub.session_id,
    )

    for e in events.values():
        e.items.clear()
    ack = PublishOptions(acknowledge=True)
    await pub.publish(topic, "eligible-s1", options=PublishOptions(acknowledge=True, eligible=[s1.session_id]))
    await pub.publish(topic, "exclude-s1", options=PublishOptions(acknowledge=True, exclude=[s1.session_id]))
    await pub.publish(
        topic,
        "eligible-both-exclude-s2",
        options=PublishOptions(
            acknowledge=True, eligible=[s1.session_id, s2.session_id], exclude=[s2.session_id]
        ),
    )
    await pub.publish(topic, "marker-2", options=ack)
    got = await wait_until(
        lambda: ["marker-2"] in events["s1"].args() and ["marker-2"] in events["s2"].args()
    )
    c.check("marker after black/white-listed events arrives", got)
    c.equal(
        "eligible/exclude lists: what s1 got",
        events["s1"].first_args(),
        ["eligible-s1", "eligible-both-exclude-s2", "marker-2"],
    )
    c.equal("eligible/exclude lists: what s2 got", events["s2"].first_args(), ["exclude-s1", "marker-2"])

    # authid/authrole lists need distinct, known identities: alice joins with a ticket.
    alice = await ctx.open(
        authmethods=["ticket"], authid="alice", on_challenge=lambda ch: "secret-ticket", node=NODE2
    )
    alice_events = Events()
    await alice.subscribe(alice_events, topic, options=DETAILS)
    await until_delivered(pub, topic, alice_events)
    for e in events.values():
        e.items.clear()
    await pub.publish(topic, "only-alice", options=PublishOptions(acknowledge=True, eligible_authid=["alice"]))
    await pub.publish(topic, "not-users", options=PublishOptions(acknowledge=True, exclude_authrole=["user"]))
    await pub.publish(topic, "marker-3", options=ack)
    got = await wait_until(
        lambda: ["marker-3"] in events["s1"].args() and ["marker-3"] in alice_events.args()
    )
    c.check("marker after authid/authrole-listed events arrives", got)
    c.equal("eligible_authid/exclude_authrole: what alice got", alice_events.first_args(), ["only-alice", "marker-3"])
    c.equal("eligible_authid/exclude_authrole: what s1 got", events["s1"].first_args(), ["not-users", "marker-3"])

    # unsubscribe: s2 stops getting events.
    await s2_subscription.unsubscribe()
    for e in events.values():
        e.items.clear()
    await pub.publish(topic, "after-unsubscribe", options=ack)
    await pub.publish(topic, "marker-4", options=ack)
    await wait_until(lambda: ["marker-4"] in events["s1"].args())
    await asyncio.sleep(0.1)
    c.equal("unsubscribed session gets nothing", events["s2"].args(), [])


async def scenario_patterns(ctx, c):
    sub, pub = await ctx.open(node=NODE2), await ctx.open()
    prefix_events, wildcard_events = Events(), Events()
    await sub.subscribe(prefix_events, "com.example.", options=SubscribeOptions(match="prefix", details=True))
    await sub.subscribe(wildcard_events, "com..create", options=SubscribeOptions(match="wildcard", details=True))
    await until_delivered(pub, "com.example.probe", prefix_events)
    await until_delivered(pub, "com.probe.create", wildcard_events)
    ack = PublishOptions(acknowledge=True)
    await pub.publish("com.example.a.b", "p", options=ack)
    await pub.publish("com.user.delete", "w-no", options=ack)
    await pub.publish("com.user.create", "w", options=ack)
    got = await wait_until(lambda: prefix_events.items and wildcard_events.items)
    c.check("prefix and wildcard subscriptions get events", got,
            f"prefix={prefix_events.args()} wildcard={wildcard_events.args()}")
    if got:
        c.equal("prefix subscription: args", prefix_events.items[0][0], ["p"])
        c.equal("prefix subscription: details.topic is the actual topic",
                prefix_events.items[0][2].topic, "com.example.a.b")
        c.equal("wildcard subscription: only com.user.create matched com..create",
                wildcard_events.args(), [["w"]])
        c.equal("wildcard subscription: details.topic is the actual topic",
                wildcard_events.items[0][2].topic, "com.user.create")
    c.equal("prefix subscription got nothing else", prefix_events.args(), [["p"]])

    # One event per matching subscription: an exact one on the same topic gets its own copy.
    exact_events = Events()
    await sub.subscribe(exact_events, "com.example.a.b", options=DETAILS)
    await until_delivered(pub, "com.example.a.b", exact_events)
    prefix_events.items.clear()
    await pub.publish("com.example.a.b", "twice", options=ack)
    got = await wait_until(lambda: exact_events.items and prefix_events.items)
    c.check("event delivered once per matching subscription (exact + prefix)", got
            and exact_events.args() == [["twice"]] and prefix_events.args() == [["twice"]],
            f"exact={exact_events.args()} prefix={prefix_events.args()}")

    callee, caller = await ctx.open(node=NODE2), await ctx.open()

    def which(label):
        return lambda *args, details=None, **kwargs: [label, details.procedure]

    await callee.register(which("prefix"), "com.example.proc.",
                          options=RegisterOptions(match="prefix", details=True))
    await callee.register(which("wildcard"), "com..run",
                          options=RegisterOptions(match="wildcard", details=True))
    await callee.register(which("exact"), "com.example.proc.exact", options=RegisterOptions(details=True))
    await until_routed(ctx, callee, caller)
    c.equal("prefix registration gets the call with details.procedure",
            await caller.call("com.example.proc.x.y"), ["prefix", "com.example.proc.x.y"])
    c.equal("wildcard registration gets the call with details.procedure",
            await caller.call("com.job.run"), ["wildcard", "com.job.run"])
    c.equal("exact registration wins over a matching prefix",
            await caller.call("com.example.proc.exact"), ["exact", "com.example.proc.exact"])
    c.error_uri("no pattern matches com.job.stop", await call_error(caller.call("com.job.stop")),
                "wamp.error.no_such_procedure")


async def scenario_rpc(ctx, c):
    callee, caller = await ctx.open(node=NODE2), await ctx.open()

    def echo(*args, **kwargs):
        return CallResult(*args, **kwargs)

    def add(a, b):
        return a + b

    def fail():
        raise ApplicationError("com.example.error.custom", 1, 2, a=3)

    def whoami(details=None):
        return details.caller

    registration = await callee.register(echo, "com.example.echo")
    c.is_id("register returns a registration id", registration.id)
    await callee.register(add, "com.example.add")
    await callee.register(fail, "com.example.fail")
    await callee.register(whoami, "com.example.whoami", options=RegisterOptions(details=True))
    await callee.register(whoami, "com.example.whoami_disclosed", options=RegisterOptions(details=True))
    DISCLOSE_ME_URIS.add("com.example.whoami_disclosed")
    await until_routed(ctx, callee, caller)

    c.equal("call with positional args returns the result", await caller.call("com.example.add", 2, 3), 5)
    result = await caller.call("com.example.echo", 1, "two", flag=True, nested={"list": [1, 2]})
    c.check("call with args and kwargs returns both",
            isinstance(result, CallResult) and list(result.results) == [1, "two"]
            and result.kwresults == {"flag": True, "nested": {"list": [1, 2]}},
            f"got {result!r}")

    error = await call_error(caller.call("com.example.fail"))
    c.error_uri("callee ApplicationError reaches the caller with its URI", error, "com.example.error.custom")
    if isinstance(error, ApplicationError):
        c.equal("error args", list(error.args), [1, 2])
        c.equal("error kwargs", error.kwargs, {"a": 3})

    c.error_uri("unregistered procedure", await call_error(caller.call("com.example.nope")),
                "wamp.error.no_such_procedure")
    c.error_uri("second REGISTER of the same URI is refused",
                await call_error(caller.register(echo, "com.example.echo")),
                "wamp.error.procedure_already_exists")

    c.equal("caller not disclosed without disclose_me", await caller.call("com.example.whoami"), None)
    c.equal("disclose_me: callee sees details.caller", await caller.call("com.example.whoami_disclosed"),
            caller.session_id)

    await registration.unregister()
    c.error_uri("call after unregister", await call_error(caller.call("com.example.echo")),
                "wamp.error.no_such_procedure")


async def scenario_progressive(ctx, c):
    callee, caller = await ctx.open(node=NODE2), await ctx.open()
    seen = {}

    async def countdown(n, details=None):
        seen.setdefault("progress_callable", []).append(details.progress is not None)
        for i in range(n):
            if details.progress is not None:
                details.progress(i, step=f"s{i}")
            await asyncio.sleep(0.02)
        return "done"

    await callee.register(countdown, "com.example.countdown", options=RegisterOptions(details=True))
    await until_routed(ctx, callee, caller)
    progress = []
    progress_count_at_result = []

    def on_progress(*args, **kwargs):
        progress.append((list(args), kwargs))

    future = caller.call("com.example.countdown", 3, options=CallOptions(on_progress=on_progress))
    result = await asyncio.wait_for(future, WAIT_TIMEOUT)
    progress_count_at_result.append(len(progress))
    c.equal("callee sees receive_progress (details.progress set)", seen.get("progress_callable"), [True])
    c.equal("caller gets the 3 progressive results in order", progress,
            [([0], {"step": "s0"}), ([1], {"step": "s1"}), ([2], {"step": "s2"})])
    c.equal("final result after all progress", (result, progress_count_at_result[0]), ("done", 3))

    # Without on_progress the caller asks for no progress: only the final result comes back.
    c.equal("call without receive_progress gets only the final result",
            await caller.call("com.example.countdown", 2), "done")
    c.equal("callee not offered progress when the caller did not ask", seen["progress_callable"],
            [True, False])


async def scenario_cancel(ctx, c):
    callee, caller = await ctx.open(node=NODE2), await ctx.open()
    started = collections.defaultdict(asyncio.Event)
    interrupted = collections.defaultdict(asyncio.Event)
    finished = collections.defaultdict(asyncio.Event)

    async def slow(tag, seconds):
        started[tag].set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:  # autobahn cancels the handler when INTERRUPT arrives
            interrupted[tag].set()
            raise ApplicationError(CANCELED, "interrupted")
        finished[tag].set()
        return "finished"

    await callee.register(slow, "com.example.slow")
    await until_routed(ctx, callee, caller)

    async def start(tag, seconds=30):
        future = caller.call("com.example.slow", tag, seconds)
        await asyncio.wait_for(started[tag].wait(), WAIT_TIMEOUT)
        return future, pending_call_request(caller, future)

    # 1. autobahn's own API: cancel the future -> CANCEL without mode.
    future, request = await start("future")
    future.cancel()
    got = await wait_until(lambda: caller.errors_for(message.Call.MESSAGE_TYPE, request))
    errors = caller.errors_for(message.Call.MESSAGE_TYPE, request)
    c.check("future.cancel(): router answers the CALL with ERROR wamp.error.canceled",
            got and errors[0].error == CANCELED, [e.error for e in errors])
    ok = await wait_until(lambda: interrupted["future"].is_set())
    c.check("future.cancel(): callee is interrupted (no mode = killnowait, wampmesh's default)", ok)

    # 2.-3. explicit modes: INTERRUPT reaches the callee, the caller gets wamp.error.canceled.
    for mode in ("killnowait", "kill"):
        future, request = await start(mode)
        caller._transport.send(message.Cancel(request, mode=mode))
        c.error_uri(f"CANCEL mode={mode}: caller gets wamp.error.canceled", await call_error(future), CANCELED)
        ok = await wait_until(lambda: interrupted[mode].is_set())
        c.check(f"CANCEL mode={mode}: callee is interrupted", ok)

    # 4. skip: caller answered at once, callee not interrupted, its late YIELD discarded.
    future, request = await start("skip", 0.5)
    began = time.monotonic()
    caller._transport.send(message.Cancel(request, mode="skip"))
    error = await call_error(future)
    c.error_uri("CANCEL mode=skip: caller gets wamp.error.canceled", error, CANCELED)
    c.check("CANCEL mode=skip: answered before the callee finished", time.monotonic() - began < 0.45)
    await asyncio.wait_for(finished["skip"].wait(), WAIT_TIMEOUT)
    await asyncio.sleep(0.1)
    c.check("CANCEL mode=skip: callee not interrupted", not interrupted["skip"].is_set())
    c.equal("late YIELD after skip is discarded (one answer only)",
            [type(m).__name__ for m in caller.received
             if getattr(m, "request", None) == request and isinstance(m, (message.Result, message.Error))],
            ["Error"])
    c.equal("router still serves calls after the cancels",
            await caller.call("com.example.slow", "after", 0), "finished")

    # 5. the callee leaves while the call is pending -> wamp.error.canceled.
    leaving = await ctx.open(node=NODE2)
    leaving_started = asyncio.Event()

    async def hang():
        leaving_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:  # our own session left: nothing to answer
            return None

    await leaving.register(hang, "com.example.hang")
    await until_routed(ctx, leaving, caller)
    future = caller.call("com.example.hang")
    await asyncio.wait_for(leaving_started.wait(), WAIT_TIMEOUT)
    leaving.leave()
    c.error_uri("callee leaves during the call: caller gets wamp.error.canceled",
                await call_error(future), CANCELED)


async def scenario_timeout(ctx, c):
    callee, caller = await ctx.open(node=NODE2), await ctx.open()

    async def slow(seconds):
        await asyncio.sleep(seconds)
        return "finished"

    await callee.register(slow, "com.example.slow")
    await until_routed(ctx, callee, caller)
    began = time.monotonic()
    # CALL.Options.timeout is in milliseconds on the wire; autobahn sends the number unchanged.
    error = await call_error(caller.call("com.example.slow", 5, options=CallOptions(timeout=200)))
    elapsed = time.monotonic() - began
    c.error_uri("timeout=200 on a 5 s procedure: wamp.error.timeout", error, "wamp.error.timeout")
    c.check("the timeout fires after about 200 ms", 0.15 <= elapsed < 2.0, f"after {elapsed:.3f}s")
    c.equal("a call that finishes within its timeout succeeds",
            await caller.call("com.example.slow", 0, options=CallOptions(timeout=2000)), "finished")


async def scenario_shared(ctx, c):
    # Two nodes: callee a and the caller on node1, callee b (and far_caller) on node2.
    a, b, caller = await ctx.open(), await ctx.open(node=NODE2), await ctx.open()
    far_caller = await ctx.open(node=NODE2)

    rr = RegisterOptions(invoke="roundrobin")
    await a.register(lambda: "a", "com.example.shared", options=rr)
    await b.register(lambda: "b", "com.example.shared", options=rr)
    await until_routed(ctx, b, caller)
    results = [await caller.call("com.example.shared") for _ in range(4)]
    c.check("roundrobin: 4 calls alternate between the two callees",
            sorted(results[:2]) == ["a", "b"] and results[2:] == results[:2], repr(results))

    first = RegisterOptions(invoke="first")
    await a.register(lambda: "a", "com.example.first", options=first)
    # a's registration is known on node2 before b registers there: a is first everywhere.
    await until_routed(ctx, a, far_caller)
    await b.register(lambda: "b", "com.example.first", options=first)
    await until_routed(ctx, b, caller)
    results = [await caller.call("com.example.first") for _ in range(4)]
    c.equal("first: every call goes to the first registrant", results, ["a"] * 4)
    results = [await far_caller.call("com.example.first") for _ in range(4)]
    c.equal("first: calls made where the second callee is go to the first registrant too",
            results, ["a"] * 4)

    # The spec names no URI for this; Crossbar and autobahn use the second one.
    c.error_uri("a different invoke policy on the same URI is refused",
                await call_error(caller.register(lambda: "c", "com.example.shared",
                                                 options=RegisterOptions(invoke="single"))),
                ("wamp.error.procedure_already_exists",
                 "wamp.error.procedure_exists_with_different_invocation_policy"))


def wampcra_signer(secret, record):
    """onChallenge for WAMP-CRA: signs with autobahn's derive_key/compute_wcs, and records the
    challenge and what autobahn's own AuthWampCra authenticator computes for it."""

    def on_challenge(challenge):
        key = secret.encode("utf8")
        if "salt" in challenge.extra:
            key = auth.derive_key(secret, challenge.extra["salt"],
                                  challenge.extra["iterations"], challenge.extra["keylen"])
        signature = auth.compute_wcs(key, challenge.extra["challenge"]).decode("ascii")
        record["extra"] = dict(challenge.extra)
        record["method"] = challenge.method
        record["signature"] = signature
        record["autobahn_signature"] = auth.AuthWampCra(authid="x", secret=secret).on_challenge(
            None, challenge)
        return signature

    return on_challenge


async def scenario_auth(ctx, c, node=NODE1):
    alice = await ctx.open(node=node, authmethods=["ticket"], authid="alice",
                           on_challenge=lambda ch: "secret-ticket")
    d = alice.details
    c.equal("ticket: alice joins as authid alice, role user, method ticket",
            (d.authid, d.authrole, d.authmethod), ("alice", "user", "ticket"))
    c.equal("ticket: the router asked for a ticket", [ch.method for ch in alice.challenges], ["ticket"])
    refused = await ctx.refused(node=node, authmethods=["ticket"], authid="alice",
                                on_challenge=lambda ch: "wrong")
    c.check("ticket: a wrong ticket is refused with ABORT",
            refused is not None and refused.reason in NOT_AUTHORIZED_REASONS,
            "joined" if refused is None else f"ABORT {refused.reason}")

    record = {}
    bob = await ctx.open(node=node, authmethods=["wampcra"], authid="bob",
                         on_challenge=wampcra_signer("bob-secret", record))
    d = bob.details
    c.equal("wampcra: bob joins as authid bob, role user, method wampcra",
            (d.authid, d.authrole, d.authmethod), ("bob", "user", "wampcra"))
    extra = record.get("extra", {})
    c.check("wampcra: unsalted challenge has no salt", "salt" not in extra, repr(extra))
    try:
        challenge = json.loads(extra.get("challenge", ""))
    except ValueError:
        challenge = {}
    c.check("wampcra: challenge is a JSON object string with authid/authmethod/nonce/timestamp/session",
            challenge.get("authid") == "bob" and challenge.get("authmethod") == "wampcra"
            and challenge.get("nonce") and challenge.get("timestamp") and "session" in challenge,
            repr(extra.get("challenge")))
    c.equal("wampcra: the challenge's session is the session WELCOME assigns",
            challenge.get("session"), d.session)
    c.equal("wampcra: compute_wcs agrees with autobahn's AuthWampCra",
            record.get("signature"), record.get("autobahn_signature"))

    record = {}
    carol = await ctx.open(node=node, authmethods=["wampcra"], authid="carol",
                           on_challenge=wampcra_signer("carol-secret", record))
    extra = record.get("extra", {})
    c.equal("wampcra salted: carol joins as authid carol, role user",
            (carol.details.authid, carol.details.authrole), ("carol", "user"))
    c.equal("wampcra salted: challenge carries salt, iterations, keylen",
            (extra.get("salt"), extra.get("iterations"), extra.get("keylen")), ("salt123", 1000, 32))

    refused = await ctx.refused(node=node, authmethods=["wampcra"], authid="bob",
                                on_challenge=wampcra_signer("not-bobs-secret", {}))
    c.check("wampcra: a wrong secret is refused with ABORT",
            refused is not None and refused.reason in NOT_AUTHORIZED_REASONS,
            "joined" if refused is None else f"ABORT {refused.reason}")
    refused = await ctx.refused(node=node, authmethods=["wampcra"], authid="carol",
                                on_challenge=wampcra_signer("carol-secret-wrong", {}))
    c.check("wampcra salted: a wrong secret is refused with ABORT",
            refused is not None and refused.reason in NOT_AUTHORIZED_REASONS,
            "joined" if refused is None else f"ABORT {refused.reason}")


async def scenario_meta(ctx, c, node=NODE1):
    # The meta API describes one node: with two nodes this runs once per node, every session on
    # that node, and with URIs of its own (a registration left on the other node by the previous
    # run would make REGISTER fail until its withdrawal has crossed the link).
    base = f"com.example.meta.{ctx.label(node)}" if ctx.mesh else "com.example.meta"
    s1, s2 = await ctx.open(node=node), await ctx.open(node=node)
    count = await s1.call("wamp.session.count")
    c.check("wamp.session.count >= 2 with two sessions in", isinstance(count, int) and count >= 2, repr(count))
    listed = await s1.call("wamp.session.list")
    c.check("wamp.session.list contains both sessions",
            isinstance(listed, list) and {s1.session_id, s2.session_id} <= set(listed), repr(listed))
    got = await s1.call("wamp.session.get", s2.session_id)
    c.check("wamp.session.get returns the session's details",
            isinstance(got, dict) and got.get("session") == s2.session_id
            and got.get("authrole") == "anonymous", repr(got))
    if ctx.mesh:
        elsewhere = await ctx.open(node=NODE2 if node == NODE1 else NODE1)
        listed = await s1.call("wamp.session.list")
        c.check("wamp.session.list does not list a session of the other node",
                isinstance(listed, list) and elsewhere.session_id not in listed, repr(listed))
        c.error_uri("wamp.session.get of a session of the other node: no_such_session",
                    await call_error(s1.call("wamp.session.get", elsewhere.session_id)),
                    "wamp.error.no_such_session")

    topic = f"{base}.topic"
    subscription = await s2.subscribe(lambda *a, **k: None, topic)
    prefix_subscription = await s2.subscribe(lambda *a, **k: None, f"{base}.",
                                             options=SubscribeOptions(match="prefix"))
    c.equal("wamp.subscription.lookup finds the subscription",
            await s1.call("wamp.subscription.lookup", topic), subscription.id)
    c.equal("wamp.subscription.lookup with match=prefix",
            await s1.call("wamp.subscription.lookup", f"{base}.", {"match": "prefix"}),
            prefix_subscription.id)
    c.equal("wamp.subscription.lookup of an unknown topic is null",
            await s1.call("wamp.subscription.lookup", f"{base}.none"), None)

    procedure = f"{base}.proc"
    registration = await s2.register(lambda: None, procedure)
    c.equal("wamp.registration.lookup finds the registration",
            await s1.call("wamp.registration.lookup", procedure), registration.id)
    c.equal("wamp.registration.lookup of an unknown procedure is null",
            await s1.call("wamp.registration.lookup", f"{base}.none"), None)

    joins, leaves = Events(), Events()
    await s1.subscribe(joins, "wamp.session.on_join", options=DETAILS)
    await s1.subscribe(leaves, "wamp.session.on_leave", options=DETAILS)
    s3 = await ctx.open(node=node)

    def joined_s3():
        return [a[0] for a in joins.args() if a and isinstance(a[0], dict)
                and a[0].get("session") == s3.session_id]

    got = await wait_until(lambda: joined_s3())
    c.check("wamp.session.on_join fires with the joining session's details", got, repr(joins.args()))
    if got:
        info = joined_s3()[0]
        c.check("on_join details carry authid and authrole",
                info.get("authrole") == "anonymous" and info.get("authid") == s3.details.authid, repr(info))
    s3.leave()
    got = await wait_until(lambda: any(a and a[0] == s3.session_id for a in leaves.args()))
    c.check("wamp.session.on_leave fires with the leaving session's id", got, repr(leaves.args()))


async def scenario_errors(ctx, c, node=NODE1):
    # A fresh session per request: a router that drops the connection on a bad URI fails only
    # that check (and the "session survives" one), not the rest.
    requests = [
        ("publish to 'com..bad' with acknowledge",
         lambda s: s.publish("com..bad", 1, options=PublishOptions(acknowledge=True))),
        ("publish to 'bad uri' with acknowledge",
         lambda s: s.publish("bad uri", 1, options=PublishOptions(acknowledge=True))),
        ("call of 'bad uri'", lambda s: s.call("bad uri")),
        ("call of 'com..bad'", lambda s: s.call("com..bad")),
        ("register of 'bad uri'", lambda s: s.register(lambda: None, "bad uri")),
        ("subscribe to 'bad uri'", lambda s: s.subscribe(lambda: None, "bad uri")),
    ]
    for name, request in requests:
        s = await ctx.open(node=node)
        with client_uri_check_disabled():
            error = await call_error(lambda: request(s))
        c.error_uri(f"{name}: wamp.error.invalid_uri", error, "wamp.error.invalid_uri")
        published = await call_error(
            lambda: s.publish("com.example.ok", options=PublishOptions(acknowledge=True)))
        c.check(f"{name}: the session goes on", "success" in str(published), repr(published))


async def run_component(ctx, work, authentication=None, node=NODE1):
    """Runs autobahn's high-level Component with the documented RawSocket transport dict, awaits
    `work(session)` from its "join" event, then stops it. Returns (SessionDetails, work's result).

    Stopping is not checked: with RawSocket on asyncio, autobahn's Component can report a clean
    close as "failed to complete connection" (its connection_lost wrapper races the leave)."""
    from autobahn.asyncio.component import Component

    loop = asyncio.get_running_loop()
    outcome = loop.create_future()
    transport = {
        "type": ctx.transport,
        "url": ctx.url(node),
        "max_retries": 0,
    }
    if ctx.transport == "websocket":
        transport["serializers"] = [ctx.serializer]
    else:
        transport["serializer"] = ctx.serializer
    component = Component(transports=[transport], realm=REALM, authentication=authentication)

    async def on_join(session, details):
        try:
            result = await work(session)
            if not outcome.done():
                outcome.set_result((details, result))
        except Exception as error:  # noqa: BLE001 - handed to the awaiting scenario
            if not outcome.done():
                outcome.set_exception(error)

    component.on("join", on_join)
    running = component.start(loop)
    try:
        return await asyncio.wait_for(outcome, JOIN_TIMEOUT)
    finally:
        try:
            await asyncio.wait_for(component.stop(), WAIT_TIMEOUT)
            await asyncio.wait_for(running, WAIT_TIMEOUT)
        except Exception:  # noqa: BLE001 - see the docstring
            pass


async def scenario_component(ctx, c, node=NODE1):
    async def work(session):
        seen = {}
        await session.register(lambda a, b: a * b, "com.example.component.mul")
        seen["product"] = await session.call("com.example.component.mul", 6, 7)
        seen["serializer"] = session._transport._serializer.SERIALIZER_ID
        events = Events()
        await session.subscribe(events, "com.example.component.topic")
        await session.publish("com.example.component.topic", "hi",
                              options=PublishOptions(acknowledge=True, exclude_me=False))
        await wait_until(lambda: events.items)
        seen["events"] = events.args()
        return seen

    details, seen = await run_component(ctx, work, node=node)
    c.equal(f"Component with {{'type': '{ctx.transport}', 'url': '{ctx.url(node)}'}} joins anonymously",
            details.authrole, "anonymous")
    c.equal("Component: register + call", seen.get("product"), 42)
    c.equal("Component: negotiated serializer", seen.get("serializer"), ctx.serializer)
    c.equal("Component: subscribe + publish", seen.get("events"), [["hi"]])

    async def nothing(session):
        return None

    details, _ = await run_component(
        ctx, nothing, {"ticket": {"authid": "alice", "ticket": "secret-ticket"}}, node)
    c.equal("Component ticket authentication (alice)", (details.authid, details.authrole), ("alice", "user"))
    details, _ = await run_component(
        ctx, nothing, {"wampcra": {"authid": "carol", "secret": "carol-secret"}}, node)
    c.equal("Component salted WAMP-CRA through autobahn's AuthWampCra (carol)",
            (details.authid, details.authrole), ("carol", "user"))


async def scenario_mesh(ctx, c):
    """Two nodes only: the link is up and interest crosses it both ways."""
    n1, n2 = await ctx.open(node=NODE1), await ctx.open(node=NODE2)
    for callee, caller, there, here in ((n2, n1, "node2", "node1"), (n1, n2, "node1", "node2")):
        try:
            calls = await until_routed(ctx, callee, caller, timeout=LINK_UP_TIMEOUT)
            c.check(f"a registration on {there} is called from {here} (after {calls} call(s))", True)
        except NotPropagated as error:
            c.check(f"a registration on {there} is called from {here}", False, str(error))


SCENARIOS = {
    "session": scenario_session,
    "pubsub": scenario_pubsub,
    "patterns": scenario_patterns,
    "rpc": scenario_rpc,
    "progressive": scenario_progressive,
    "cancel": scenario_cancel,
    "timeout": scenario_timeout,
    "shared": scenario_shared,
    "auth": scenario_auth,
    "meta": scenario_meta,
    "errors": scenario_errors,
    "component": scenario_component,
}


# With two nodes these run once on each node (what they check belongs to one node's sessions).
PER_NODE_SCENARIOS = {"auth", "meta", "errors", "component"}


async def run_scenarios(ctx, names):
    txaio.config.loop = asyncio.get_running_loop()
    runs = [("mesh", scenario_mesh, {})] if ctx.mesh else []
    for name in names:
        if ctx.mesh and name in PER_NODE_SCENARIOS:
            runs += [(f"{name}@{ctx.label(n)}", SCENARIOS[name], {"node": n}) for n in (NODE1, NODE2)]
        else:
            runs.append((name, SCENARIOS[name], {}))
    for label, scenario, kwargs in runs:
        checks = Checks(ctx, label)
        try:
            await asyncio.wait_for(scenario(ctx, checks, **kwargs), SCENARIO_TIMEOUT)
        except asyncio.TimeoutError:
            checks.check("scenario finished", False, f"timed out after {SCENARIO_TIMEOUT}s")
        except Exception as error:  # noqa: BLE001 - any escape is a failed check
            detail = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            checks.check("scenario finished", False, f"{type(error).__name__}: {error}\n{detail}")
        finally:
            await ctx.close_all()


# ---------------------------------------------------------------------------------------------
# selftest: what can be checked without a router


def selftest():
    ctx = Context(0, "selftest")
    c = Checks(ctx, "selftest")
    from importlib.metadata import version

    import cbor2  # noqa: F401 - autobahn's CBOR and MessagePack serializers need these
    import msgpack  # noqa: F401

    c.check("autobahn {}, cbor2 {}, msgpack {} import".format(
        version("autobahn"), version("cbor2"), version("msgpack")), True)
    for name, cls in SERIALIZERS.items():
        serializer = cls()
        c.equal(f"{name} serializer id", serializer.SERIALIZER_ID, name)
        c.equal(f"{name} RawSocket serializer code", serializer.RAWSOCKET_SERIALIZER_ID,
                {"json": 1, "msgpack": 2, "cbor": 3}[name])
        wire, _ = serializer.serialize(message.Publish(1, "com.example.t", args=[1], kwargs={"a": 2}))
        (back,) = serializer.unserialize(wire)
        c.check(f"{name} round-trips a PUBLISH", back.topic == "com.example.t" and back.kwargs == {"a": 2})

    DISCLOSE_ME_URIS.add("com.example.selftest")
    json_serializer = JsonSerializer()
    publish = json.loads(json_serializer.serialize(message.Publish(7, "com.example.selftest"))[0])
    call = json.loads(json_serializer.serialize(message.Call(8, "com.example.selftest"))[0])
    other = json.loads(json_serializer.serialize(message.Call(9, "com.example.other"))[0])
    c.equal("disclose_me patch: PUBLISH options", publish[2], {"disclose_me": True})
    c.equal("disclose_me patch: CALL options", call[2], {"disclose_me": True})
    c.equal("disclose_me patch: other URIs untouched", other[2], {})
    cancel = json.loads(json_serializer.serialize(message.Cancel(8, mode="killnowait"))[0])
    c.equal("CANCEL with explicit mode on the wire", cancel, [49, 8, {"mode": "killnowait"}])
    timeout_call = json.loads(json_serializer.serialize(
        message.Call(10, "com.example.t", timeout=200))[0])
    c.equal("CALL timeout is sent unchanged (ms)", timeout_call[2], {"timeout": 200})

    # WAMP-CRA test vectors from autobahn's test_wamp_auth.py (shared/notes/WAMP-SPEC.md §4.4).
    c.equal("derive_key test vector", auth.derive_key("L3L1YUE8Txlw", "salt123"),
            b"qzcdsr9uu/L5hnss3kjNTRe490ETgA70ZBaB5rvnJ5Y=")
    c.equal("compute_wcs test vector", auth.compute_wcs(b"L3L1YUE8Txlw", b"[1, 2, 3]"),
            b"1njQtmmeYO41N5EWEzD2kAjjEKRZ5kPZt/TzpYXOzR0=")
    with client_uri_check_disabled():
        c.equal("client URI check can be disabled", message.check_or_raise_uri("bad uri"), "bad uri")
    refused = False
    try:
        message.check_or_raise_uri("bad uri")
    except Exception:
        refused = True
    c.check("client URI check restored afterwards", refused)
    return ctx


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="RawSocket TCP port of the node on 127.0.0.1")
    parser.add_argument("--port2", type=int,
                        help="RawSocket TCP port of a second node linked to the first: the "
                             "parties of each scenario are split across the two")
    parser.add_argument("--serializer", choices=sorted(SERIALIZERS), default="cbor")
    parser.add_argument("--transport", choices=["rawsocket", "websocket"], default="rawsocket",
                        help="websocket: ws://127.0.0.1:PORT/ws with subprotocol wamp.2.<serializer>")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS) + ["all"],
                        help="repeatable; default: all")
    parser.add_argument("--selftest", action="store_true", help="checks that need no router")
    parser.add_argument("--verbose", action="store_true", help="autobahn debug logging to stderr")
    args = parser.parse_args()
    if args.verbose:
        global VERBOSE
        VERBOSE = True
        txaio.start_logging(level="debug")

    if args.selftest:
        ctx = selftest()
    else:
        if args.port is None:
            parser.error("--port is required unless --selftest")
        names = args.scenario or ["all"]
        names = list(SCENARIOS) if "all" in names else list(dict.fromkeys(names))
        ctx = Context(args.port, args.serializer, args.port2, args.transport)
        asyncio.run(run_scenarios(ctx, names))

    total = ctx.passed + ctx.failed
    verdict = "all checks passed" if ctx.failed == 0 and total > 0 else "FAILED"
    print(f"interop summary: {ctx.passed} of {total} checks ok, {ctx.failed} not ok -- {verdict}",
          flush=True)
    sys.exit(0 if ctx.failed == 0 and total > 0 else 1)


if __name__ == "__main__":
    main()
