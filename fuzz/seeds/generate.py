# Writes the seed corpora for the wampmesh fuzz targets (fuzz/seeds/<target>/).
# Usage: python3 fuzz/seeds/generate.py fuzz/seeds   (needs the msgpack and cbor2 packages)
import os, sys, json, msgpack, cbor2, struct
root = sys.argv[1]
def w(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)

hello = [1, "com.example.realm", {"roles": {"publisher": {}, "subscriber": {}, "caller": {}, "callee": {}}, "authmethods": ["anonymous"]}]
B = b"\x00\x01\xfe\xff"
msgs = {
 "hello": hello,
 "welcome": [2, 9007199254740992, {"roles": {"broker": {}}, "authid": "x"}],
 "abort": [3, {"message": "bye"}, "wamp.error.no_such_realm"],
 "challenge": [4, "wampcra", {"challenge": "{}", "salt": "s", "iterations": 1000, "keylen": 32}],
 "authenticate": [5, "c2lnbmF0dXJl", {}],
 "goodbye": [6, {}, "wamp.close.close_realm"],
 "error": [8, 48, 7, {}, "wamp.error.no_such_procedure", [1, "two", 3.5], {"k": None}],
 "publish": [16, 1, {"acknowledge": True, "exclude_me": False}, "com.example.topic", [1, -2, 3.25, True, None, "s", [], {}], {"a": {"b": [1]}}],
 "published": [17, 1, 5],
 "subscribe": [32, 2, {"match": "wildcard"}, "com..topic"],
 "subscribed": [33, 2, 7],
 "unsubscribe": [34, 3, 7],
 "unsubscribed": [35, 3],
 "unsubscribed_revoke": [35, 0, {"subscription": 7, "reason": "x"}],
 "event": [36, 7, 5, {"publisher": 1}, [18446744073709551615, -9223372036854775808]],
 "call": [48, 4, {"timeout": 1000, "receive_progress": True}, "com.example.add", [2, 3]],
 "cancel": [49, 4, {"mode": "kill"}],
 "result": [50, 4, {"progress": True}, [5]],
 "register": [64, 5, {"match": "prefix", "invoke": "roundrobin"}, "com.example"],
 "registered": [65, 5, 9],
 "unregister": [66, 6, 9],
 "unregistered": [67, 6],
 "invocation": [68, 1, 9, {"caller": 3}, [1], {}],
 "interrupt": [69, 1, {"mode": "killnowait"}],
 "yield": [70, 1, {}, [5], {"x": 1.0}],
}
for name, m in msgs.items():
    w("json_decode", name, json.dumps(m, separators=(",", ":")).encode())
    w("msgpack_decode", name, msgpack.packb(m))
    w("cbor_decode", name, cbor2.dumps(m))
# binary values: JSON as "\0"+base64, the others natively
w("json_decode", "binary", b'[16,1,{},"t",["\\u0000AAH+/w=="]]')
w("msgpack_decode", "binary", msgpack.packb([16, 1, {}, "t", [B, 1.5, msgpack.ExtType(1, b"x")]], use_bin_type=True))
w("msgpack_decode", "float32", msgpack.packb([16, 1, {}, "t", [1.5]], use_single_float=True))
w("cbor_decode", "binary", cbor2.dumps([16, 1, {}, "t", [B, 2**70, -2**70, cbor2.CBORTag(1, 0)]]))
w("cbor_decode", "indefinite", bytes([0x9f, 0x10, 0x01, 0xbf, 0xff, 0x7f, 0x61, 0x74, 0xff, 0xff]))

# rawsocket: handshake, control byte, frames
def frame(kind, payload):
    return bytes([kind]) + len(payload).to_bytes(3, "big") + payload
w("rawsocket_frames", "json_frames", b"\x7f\xf1\x00\x00" + b"\xf7" + frame(0, b"[1,\"r\",{}]") + frame(1, b"ping") + frame(2, b""))
w("rawsocket_frames", "small_max", b"\x7f\x02\x00\x00" + b"\x02" + frame(0, b"x" * 600) + frame(0, b"y"))
w("rawsocket_frames", "xbit", b"\x7f\x33\x00\x00" + b"\xf4" + bytes([0x08, 0, 0, 0]))
w("rawsocket_frames", "refused", b"\x7f\xf2\x00\x00" + b"\x01" + frame(1, b"a" * 70))
w("rawsocket_frames", "reserved", b"\x7f\xf1\x00\x01" + b"\x37" + frame(0, b"ab") + bytes([0x13, 0, 0, 0]))

# session scripts: one mode byte, then lines
def script(mode, ser, lines):
    out = []
    for l in lines:
        if isinstance(l, bytes):
            out.append(l)
        else:
            enc = ser(l)
            if b"\n" in enc:
                raise SystemExit(f"seed line {l!r} encodes with a newline byte; change it")
            out.append(enc)
    data = bytes([mode]) + b"\n".join(out)
    return data
jsn = lambda m: json.dumps(m, separators=(",", ":")).encode()
mp = lambda m: msgpack.packb(m, use_bin_type=True)
cb = lambda m: cbor2.dumps(m)
pubsub = [
 [32, 1, {}, "com.t"], [32, 2, {"match": "prefix"}, "com"], [32, 3, {"match": "wildcard"}, "com."],
 [16, 4, {"acknowledge": True, "exclude_me": False}, "com.t", [1, "x"], {"k": 1}],
 [16, 5, {"acknowledge": True, "eligible": [1], "exclude_authrole": ["a"]}, "com.t"],
 [34, 6, 1], [34, 7, 1], [16, 8, {"acknowledge": True}, "wamp.session.on_join"],
 [32, 9, {"match": "bogus"}, "com t"], [16, 12, {}, "com..bad"],
]
rpc = [
 [64, 1, {}, "com.add"], [64, 2, {"match": "prefix", "invoke": "roundrobin"}, "com."],
 [48, 3, {"receive_progress": True, "timeout": 5000, "disclose_me": True}, "com.add", [2, 3]],
 [70, 1, {"progress": True}, [1]], [70, 1, {}, [5]],
 [48, 4, {}, "com.other", [], {"a": 1}], [49, 4, {"mode": "kill"}], [8, 68, 2, {}, "com.error", ["no"]],
 [48, 5, {}, "com.add"], [49, 5, {"mode": "skip"}], [48, 6, {}, "com.add"], [49, 6, {}],
 [66, 7, 1], [66, 8, 1], [48, 9, {}, "com.add"], [48, 9, {}, "com.add"],
]
meta = [
 [48, 1, {}, "wamp.session.count"], [48, 2, {}, "wamp.session.list", [["anonymous"]]],
 [48, 3, {}, "wamp.session.get", [1]], [48, 4, {}, "wamp.subscription.list"],
 [48, 5, {}, "wamp.registration.lookup", ["com.add", {"match": "exact"}]],
 [48, 6, {}, "wamp.subscription.match", ["com.t"]], [48, 7, {}, "wamp.registration.get", [1]],
 [48, 8, {}, "wamp.session.kill", [1]],
]
link = [
 [32, 1, {}, "wampmesh.link.channel"], [64, 2, {}, "wampmesh.link.invoke"],
 [16, 3, {"_wampmesh": {"type": "ia", "origin": "nodeB", "epoch": 1, "seq": 1, "hops": 1,
     "interest": [["com.t", "exact", None], ["com.p", "prefix", "single"]]}}, "wampmesh.link.channel"],
 [16, 4, {"_wampmesh": {"type": "publish", "topic": "com.t", "publication": 77, "origin": "nodeB",
     "path": ["nodeB"], "options": {}}}, "wampmesh.link.channel", [1]],
 [48, 5, {"_wampmesh": {"path": ["nodeB"], "targets": ["fuzz-node"], "caller": {"caller": 5}}}, "com.p.x", [1]],
 [16, 6, {"_wampmesh": {"type": "unreachable", "origin": "nodeB", "epoch": 1, "seq": 1}}, "wampmesh.link.channel"],
 [32, 7, {}, "com.t"], [64, 8, {}, "com.q"],
]
for mode, ser, tag in [(ord("j"), jsn, "json"), (ord("m"), mp, "msgpack"), (ord("c"), cb, "cbor")]:
    w("session_frames", tag + "_pubsub", script(mode, ser, pubsub + [b"!pping", b"!o", b"!z", [6, {}, "wamp.close.normal"]]))
    w("session_frames", tag + "_rpc", script(mode, ser, rpc))
    w("session_frames", tag + "_meta", script(mode, ser, meta + [b"!s"]))
    w("session_frames", tag + "_link", script(mode - 32, ser, link + rpc[:4] + pubsub[:4]))
    w("session_frames", tag + "_tight", script(mode | 0x80, ser, pubsub[:4] + [[16, 9, {}, "com.t", ["x" * 6000]]] + rpc[:3]))
w("session_frames", "json_garbage", script(ord("j"), jsn, [b"[1,\"again\",{}]", b"!r\x10\x00\x00\x00", b"[16,1,{},\"t\"]"]))
# boundary values: the largest ids, hops, timeouts and seq numbers
MAXU = 2**64 - 1
edges = [
 [32, 1, {}, "wampmesh.link.channel"], [64, 2, {}, "wampmesh.link.invoke"],
 [16, 3, {"_wampmesh": {"type": "ia", "origin": "nodeB", "epoch": MAXU, "seq": MAXU, "hops": MAXU,
     "interest": [["com.t", "wildcard", None]]}}, "wampmesh.link.channel"],
 [16, 4, {"_wampmesh": {"type": "unreachable", "origin": "nodeB", "epoch": MAXU, "seq": MAXU}}, "wampmesh.link.channel"],
 [64, 2**53, {"invoke": "last"}, "com.edge"],
 [48, 2**53, {"timeout": MAXU}, "com.edge", [2**53, -2**63, 1e308]],
 [70, 1, {"progress": True}], [49, 2**53, {"mode": "skip"}],
]
w("session_frames", "json_edges", script(ord("J"), jsn, edges))
w("session_frames", "json_tight_edges", script(ord("j") | 0x80, jsn, edges))
