#!/usr/bin/env node
// autobahn-js (the npm package `autobahn`, pinned in package.json) in Node.js against a wampmesh
// node over WebSocket: pub/sub and RPC between two autobahn-js sessions, with one serializer,
// ticket and WAMP-CRA authentication, an error from a callee, and a RawSocket client of the Rust
// test (procedure `rust.echo`, topic `rust.from_js`) reached across transports.
//
// Run by tests/interop_autobahn_js.rs from target/node-interop/ (after `npm ci` there):
//   node autobahn_node.js --url ws://127.0.0.1:PORT/ws --serializer json|msgpack|cbor
// Node < 22 needs --experimental-websocket (autobahn 26 uses the global WebSocket).
// Prints `PASS <check>` / `FAIL <check> -- <detail>` lines and a summary line; exits 0 only if
// every check passed.
'use strict';

const autobahn = require('autobahn');

const TIMEOUT_MS = 5000;
let passed = 0;
let failed = 0;

function check(name, ok, detail) {
  if (ok) {
    passed += 1;
    console.log(`PASS [${SERIALIZER}] ${name}`);
  } else {
    failed += 1;
    console.log(`FAIL [${SERIALIZER}] ${name} -- ${detail}`);
  }
}

function equal(name, actual, expected) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  check(name, a === e, `expected ${e}, got ${a}`);
}

function arg(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 ? process.argv[at + 1] : fallback;
}

const URL = arg('url');
const SERIALIZER = arg('serializer', 'json');

function serializer() {
  const s = autobahn.serializer;
  switch (SERIALIZER) {
    case 'json': return new s.JSONSerializer();
    case 'msgpack': return new s.MsgpackSerializer();
    case 'cbor': return new s.CBORSerializer();
    default: throw new Error(`unknown serializer ${SERIALIZER}`);
  }
}

function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Opens a connection and resolves with {connection, session, details}; rejects with the
// close reason when the router refuses the join.
function open(auth) {
  const options = Object.assign({
    url: URL,
    realm: 'realm1',
    serializers: [serializer()],
    max_retries: 0,
    retry_if_unreachable: false,
  }, auth || {});
  const connection = new autobahn.Connection(options);
  const joined = new Promise((resolve, reject) => {
    connection.onopen = (session, details) => resolve({ connection, session, details });
    connection.onclose = (reason, details) => {
      reject(new Error(`closed: ${reason} ${JSON.stringify(details)}`));
      return true; // no retry
    };
  });
  connection.open();
  return within(joined, 'join');
}

async function waitFor(predicate) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (!predicate() && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  return predicate();
}

async function pubsub(a, b) {
  const received = [];
  await b.session.subscribe('js.topic', (args, kwargs) => received.push([args, kwargs]));
  for (let i = 0; i < 5; i += 1) {
    await a.session.publish('js.topic', [i, 'x'], { n: i }, { acknowledge: true });
  }
  await waitFor(() => received.length === 5);
  equal('pub/sub: 5 events in order with args and kwargs', received,
    [0, 1, 2, 3, 4].map((i) => [[i, 'x'], { n: i }]));
  const prefix = [];
  await b.session.subscribe('js.prefix', (args, kwargs, details) => prefix.push(details.topic), { match: 'prefix' });
  await a.session.publish('js.prefix.one', [], {}, { acknowledge: true });
  await waitFor(() => prefix.length === 1);
  equal('pub/sub: prefix subscription gets the concrete topic', prefix, ['js.prefix.one']);
}

async function rpc(a, b) {
  await b.session.register('js.add', (args) => args[0] + args[1]);
  await b.session.register('js.kw', (args, kwargs) => new autobahn.Result([kwargs.word.toUpperCase()], { len: kwargs.word.length }));
  await b.session.register('js.fail', () => { throw new autobahn.Error('com.example.oops', ['no'], {}); });
  equal('rpc: call returns the result', await within(a.session.call('js.add', [40, 2]), 'call js.add'), 42);
  const kw = await within(a.session.call('js.kw', [], { word: 'wamp' }), 'call js.kw');
  equal('rpc: args and kwargs both ways', [kw.args, kw.kwargs], [['WAMP'], { len: 4 }]);
  try {
    await within(a.session.call('js.fail'), 'call js.fail');
    check('rpc: a callee error reaches the caller', false, 'the call succeeded');
  } catch (e) {
    equal('rpc: a callee error reaches the caller', [e.error, e.args], ['com.example.oops', ['no']]);
  }
  try {
    await within(a.session.call('js.nobody'), 'call js.nobody');
    check('rpc: no_such_procedure', false, 'the call succeeded');
  } catch (e) {
    equal('rpc: no_such_procedure', e.error, 'wamp.error.no_such_procedure');
  }
}

async function acrossTransports(a) {
  const echoed = await within(a.session.call('rust.echo', ['from', SERIALIZER]), 'call rust.echo');
  // Several positional results come back as an autobahn.Result (a single one as the value).
  const args = echoed instanceof autobahn.Result ? echoed.args : echoed;
  equal('a RawSocket (Rust client) callee answers an autobahn-js caller', args, ['from', SERIALIZER]);
  await a.session.publish('rust.from_js', [SERIALIZER], {}, { acknowledge: true });
  check('published to the RawSocket (Rust client) subscriber', true);
}

async function auth() {
  const ticket = await open({
    authmethods: ['ticket'], authid: 'alice', onchallenge: () => 'secret-ticket',
  });
  equal('ticket auth: alice joins with role user', [ticket.details.authid, ticket.details.authrole], ['alice', 'user']);
  ticket.connection.close();
  const cra = await open({
    authmethods: ['wampcra'], authid: 'bob',
    onchallenge: (session, method, extra) => autobahn.auth_cra.sign('bob-secret', extra.challenge),
  });
  equal('WAMP-CRA: bob joins with role user', [cra.details.authid, cra.details.authrole], ['bob', 'user']);
  cra.connection.close();
  try {
    const wrong = await open({ authmethods: ['ticket'], authid: 'alice', onchallenge: () => 'wrong' });
    wrong.connection.close();
    check('ticket auth: a wrong ticket is refused', false, 'joined');
  } catch (e) {
    check('ticket auth: a wrong ticket is refused', /not_authorized|authentication_failed/.test(e.message), e.message);
  }
}

async function main() {
  check(`autobahn-js ${autobahn.version} loads (node ${process.version})`, true);
  const a = await open();
  const b = await open();
  equal(`negotiated subprotocol`, a.session._socket.info.protocol, `wamp.2.${SERIALIZER}`);
  check('two sessions with distinct ids', a.session.id !== b.session.id, `${a.session.id} ${b.session.id}`);
  await pubsub(a, b);
  await rpc(a, b);
  await acrossTransports(a);
  await auth();
  a.connection.close();
  b.connection.close();
}

const overall = setTimeout(() => {
  check('the run completes within 30 s', false, 'timed out');
  finish();
}, 30000);

function finish() {
  clearTimeout(overall);
  const total = passed + failed;
  const verdict = failed === 0 && total > 0 ? 'all checks passed' : 'FAILED';
  console.log(`autobahn-js summary: ${passed} of ${total} checks ok, ${failed} not ok -- ${verdict}`);
  process.exit(failed === 0 && total > 0 ? 0 : 1);
}

main().catch((e) => check('the run completes', false, e && e.stack ? e.stack : JSON.stringify(e))).finally(finish);
