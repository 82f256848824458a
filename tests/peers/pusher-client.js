// A real pusher-js client (its Node build) for herald's end-to-end test
// (tests/it/pusher.rs, pusher_js_clients_receive_every_event_from_soketi).
//
// Subscribes to every channel in CHANNELS (comma-separated). private-* channels are authorized
// with the official `pusher` library and the app secret, as a Laravel app's /broadcasting/auth
// would; for private-encrypted-* channels that answer carries the channel's shared_secret, so
// pusher-js decrypts the events itself. Prints one JSON line per thing that happens:
//   {"ready":true}                                  every subscription succeeded
//   {"event":..,"channel":..,"data":<parsed data>}  an event arrived (data as pusher-js hands it over)
//   {"error":..}                                    something went wrong (the test fails on it)
// Exits when its stdin closes.
//
// Env: PUSHER_HOST (127.0.0.1), PUSHER_PORT (6001), PUSHER_APP_ID (app-id), PUSHER_APP_KEY
// (app-key), PUSHER_APP_SECRET (app-secret), PUSHER_ENCRYPTION_MASTER_KEY_BASE64, CHANNELS.
'use strict';
const Pusher = require('pusher');
const PusherJS = require('pusher-js');

const env = (k, d) => process.env[k] || d;
const host = env('PUSHER_HOST', '127.0.0.1');
const port = parseInt(env('PUSHER_PORT', '6001'), 10);
const key = env('PUSHER_APP_KEY', 'app-key');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');

const server = new Pusher({
  appId: env('PUSHER_APP_ID', 'app-id'),
  key,
  secret: env('PUSHER_APP_SECRET', 'app-secret'),
  host,
  port: String(port),
  useTLS: false,
  encryptionMasterKeyBase64: process.env.PUSHER_ENCRYPTION_MASTER_KEY_BASE64 || undefined,
});

PusherJS.logToConsole = false;
PusherJS.log = (m) => process.stderr.write(`pusher-js: ${m}\n`);
const client = new PusherJS(key, {
  cluster: 'mt1', // required by pusher-js 8 even with wsHost
  wsHost: host,
  wsPort: port,
  wssPort: port,
  forceTLS: false,
  enabledTransports: ['ws'],
  disableStats: true,
  channelAuthorization: {
    customHandler: ({ socketId, channelName }, callback) => {
      try {
        callback(null, server.authorizeChannel(socketId, channelName));
      } catch (e) {
        callback(e, null);
      }
    },
  },
});
client.connection.bind('error', (e) => out({ error: 'connection error', detail: JSON.stringify(e) }));

const channels = env('CHANNELS', '').split(',').filter(Boolean);
let waiting = channels.length;
for (const name of channels) {
  const channel = client.subscribe(name);
  channel.bind('pusher:subscription_succeeded', () => {
    if (--waiting === 0) out({ ready: true });
  });
  channel.bind('pusher:subscription_error', (e) => out({ error: `cannot subscribe to ${name}`, detail: JSON.stringify(e) }));
  channel.bind_global((event, data) => {
    if (event.startsWith('pusher:') || event.startsWith('pusher_internal:')) return;
    out({ event, channel: name, data });
  });
}

process.stdin.on('end', () => {
  client.disconnect();
  setTimeout(() => process.exit(0), 50);
});
process.stdin.resume();
