// A Laravel Echo client (laravel-echo 2, the library Laravel apps ship to browsers) in Node, for
// tests/it/laravel.rs. The test copies it next to the Node peers' node_modules and runs it there.
//
// BROADCASTER=socket.io: Echo's socket.io connector (socket.io-client 2) against
//   laravel-echo-server at ECHO_URL; laravel-echo-server authorizes private and presence
//   channels by calling the app's /broadcasting/auth with the headers given here.
// BROADCASTER=pusher: Echo's pusher connector (pusher-js) against soketi at PUSHER_HOST:PUSHER_PORT
//   with app key PUSHER_APP_KEY; pusher-js POSTs socket_id and channel_name to AUTH_ENDPOINT.
//
// TOKEN: the user's API token (Authorization: Bearer). PRIVATE, PRESENCE, ENCRYPTED: comma lists
// of channel names without their prefix; LISTEN: the event names to listen for on each, as an
// app's JavaScript writes them (`OrderShipped` means App\Events\OrderShipped; `.name` is as is).
//
// Prints one JSON line per thing that happens:
//   {"ready":true,"socket_id":..,"members":{"<presence channel>":[..]}}  every subscription succeeded (with
//                                                                          socket.io only presence channels confirm
//                                                                          one: the test polls laravel-echo-server)
//   {"connected":true,"socket_id":..}                                    connected (socket.io)
//   {"event":..,"channel":..,"data":..}                                  an event arrived
//   {"joining":..,"channel":..}                                          someone joined a presence channel
//   {"error":..}                                                         something went wrong
// Exits when its stdin closes.
import Echo from 'laravel-echo';
import PusherJS from 'pusher-js';
import io from 'socket.io-client';

const env = (k, d) => process.env[k] ?? d;
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const list = (k) => env(k, '').split(',').filter(Boolean);
const broadcaster = env('BROADCASTER', 'pusher');
const listen = list('LISTEN');

const options = broadcaster === 'socket.io'
  ? { broadcaster, client: io, host: env('ECHO_URL'), transports: ['websocket'], reconnection: false }
  : {
      broadcaster,
      Pusher: PusherJS,
      key: env('PUSHER_APP_KEY'),
      cluster: 'mt1',
      wsHost: env('PUSHER_HOST', '127.0.0.1'),
      wsPort: Number(env('PUSHER_PORT')),
      wssPort: Number(env('PUSHER_PORT')),
      forceTLS: false,
      enabledTransports: ['ws'],
      authEndpoint: env('AUTH_ENDPOINT'),
    };
options.bearerToken = env('TOKEN');
PusherJS.logToConsole = false;
PusherJS.log = (m) => process.stderr.write(`pusher-js: ${m}\n`);

const echo = new Echo(options);
const pending = new Set();
const members = {};
const subscribed = (name) => {
  pending.delete(name);
  if (pending.size === 0) out({ ready: true, socket_id: echo.socketId(), members });
};
const bind = (channel, name) => {
  for (const event of listen) {
    channel.listen(event, (data) => out({ event, channel: name, data }));
  }
  channel.error?.((e) => out({ error: `cannot subscribe to ${name}`, detail: JSON.stringify(e) }));
};

for (const name of list('PRIVATE')) {
  const channel = echo.private(name);
  if (broadcaster === 'pusher') {
    pending.add(`private-${name}`);
    channel.subscribed(() => subscribed(`private-${name}`));
  }
  bind(channel, `private-${name}`);
}
for (const name of list('ENCRYPTED')) {
  const channel = echo.encryptedPrivate(name);
  pending.add(`private-encrypted-${name}`);
  channel.subscribed(() => subscribed(`private-encrypted-${name}`));
  bind(channel, `private-encrypted-${name}`);
}
for (const name of list('PRESENCE')) {
  const channel = echo.join(name);
  pending.add(`presence-${name}`);
  channel.here((users) => {
    members[`presence-${name}`] = users;
    subscribed(`presence-${name}`);
  });
  channel.joining((user) => out({ joining: user, channel: `presence-${name}` }));
  bind(channel, `presence-${name}`);
}

if (broadcaster === 'socket.io') {
  const socket = echo.connector.socket;
  socket.on('connect', () => out({ connected: true, socket_id: socket.id }));
  socket.on('subscription_error', (channel, status) => out({ error: `cannot subscribe to ${channel}`, detail: status }));
  socket.on('connect_error', (e) => out({ error: 'connect_error', detail: String(e) }));
} else {
  echo.connector.pusher.connection.bind('error', (e) => out({ error: 'connection error', detail: JSON.stringify(e) }));
}

process.stdin.on('end', () => {
  echo.disconnect();
  setTimeout(() => process.exit(0), 50);
});
process.stdin.resume();
