// Records the exact HTTP requests the official `pusher` npm library (pusher-http-node) sends,
// for herald's unit test `broadcast::pusher` `requests_match_the_official_library`.
//
// The library is pointed at a local HTTP server that records method, path, query and body and
// answers 200 {}. The clock is fixed (the docs' auth_timestamp 1353088179) and the encryption
// nonce is fixed (bytes 0..23), so the output is reproducible.
//
// Regenerate (from the repository root, after any test run installed the peers):
//   cp tests/peers/*.js target/tmp/peers/ && node target/tmp/peers/pusher-fixture.js > tests/fixtures/pusher_requests.json
'use strict';
const http = require('http');
const nacl = require('tweetnacl');

Date.now = () => 1353088179 * 1000;
nacl.randomBytes = (n) => Uint8Array.from({ length: n }, (_, i) => i);

const Pusher = require('pusher');

const cases = [
  {
    name: 'docs_vector_channels',
    call: (p) => p.trigger(['project-3'], 'foo', { some: 'data' }),
  },
  {
    name: 'multi_channel_with_socket_id',
    call: (p) => p.trigger(['orders.1', 'private-user.7'], 'App\\Events\\OrderShipped',
      { order_id: 1, note: 'caf\u00e9 \u2713 "quoted" a/b' }, { socket_id: '123.456' }),
  },
  {
    name: 'batch',
    call: (p) => p.triggerBatch([
      { name: 'E1', data: { a: 1 }, channel: 'c1' },
      { name: 'E2', data: { b: [1, 2] }, channel: 'private-c2', socket_id: '1.2' },
    ]),
  },
  {
    name: 'encrypted',
    call: (p) => p.trigger(['private-encrypted-orders.1'], 'Secret', { order_id: 1 }),
  },
];

const requests = [];
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const [path, query] = req.url.split('?');
    requests.push({ method: req.method, path, query, content_type: req.headers['content-type'], body });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{}');
  });
});

server.listen(0, '127.0.0.1', async () => {
  const pusher = new Pusher({
    appId: '3',
    key: '278d425bdf160c739803',
    secret: '7ad3773142a6692b25b8',
    host: '127.0.0.1',
    port: String(server.address().port),
    useTLS: false,
    // 32 bytes, base64: the bytes 32..63
    encryptionMasterKeyBase64: Buffer.from(Array.from({ length: 32 }, (_, i) => 32 + i)).toString('base64'),
  });
  const out = { generator: 'tests/peers/pusher-fixture.js', library: 'pusher@' + require('pusher/package.json').version,
    app_id: '3', key: '278d425bdf160c739803', secret: '7ad3773142a6692b25b8',
    encryption_master_key_base64: pusher.config.encryptionMasterKey.toString('base64'), auth_timestamp: 1353088179, cases: [] };
  for (const c of cases) {
    requests.length = 0;
    await c.call(pusher);
    out.cases.push({ name: c.name, request: requests[0] });
  }
  server.close();
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
});
