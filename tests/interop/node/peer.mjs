// A pusher-js 8.6.0 / laravel-echo 2.5.0 client driven by JSON commands on stdin, reporting JSON lines
// on stdout. Python tests (tests/interop) spawn it against the embedded server or Soketi.
//
// Commands: connect, subscribe, bind, unsubscribe, trigger, signin, socket_id, disconnect,
//           echo_listen, echo_listen_to_all, echo_join, echo_whisper, echo_listen_whisper, echo_leave.
// Reports:  {"ev":"state"|"event"|"subscribed"|"subscription_error"|"socket_id"|"here"|"joining"|
//            "leaving"|"echo_event"|"echo_all"|"whisper"|"triggered"|"user_event"|"error"|"ready", ...}
import { createRequire } from 'node:module';
import path from 'node:path';
import readline from 'node:readline';
import { pathToFileURL } from 'node:url';

const nodePath = process.env.NODE_PATH;
const require = createRequire(path.join(nodePath, 'index.js'));
const Pusher = require('pusher-js');
// laravel-echo's CommonJS entry cannot be require()d on Node 20: load its ES module build.
const Echo = (await import(pathToFileURL(path.join(nodePath, 'laravel-echo', 'dist', 'echo.js')).href)).default;

let pusher = null;
let echo = null;

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

function options(cmd) {
  const opts = {
    cluster: '',
    wsHost: '127.0.0.1',
    wsPort: cmd.port,
    wssPort: cmd.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    enableStats: false,
    ...(cmd.options || {}),
  };
  if (cmd.authEndpoint) {
    opts.channelAuthorization = { endpoint: cmd.authEndpoint, transport: 'ajax', headers: cmd.headers || {} };
  }
  if (cmd.userAuthEndpoint) {
    opts.userAuthentication = { endpoint: cmd.userAuthEndpoint, transport: 'ajax', headers: cmd.headers || {} };
  }
  return opts;
}

function watch(p) {
  p.connection.bind('state_change', (s) => out({ ev: 'state', previous: s.previous, current: s.current }));
  p.connection.bind('error', (e) => out({ ev: 'error', error: JSON.parse(JSON.stringify(e || null)) }));
  p.user.bind_global((event, data) => out({ ev: 'user_event', event, data }));
}

function bindChannel(channel) {
  channel.bind_global((event, data, meta) => {
    if (event === 'pusher:subscription_succeeded') {
      const result = { ev: 'subscribed', channel: channel.name };
      if (data && data.members) {
        result.members = data.members;
        result.count = data.count;
        result.me = data.me;
      }
      out(result);
    } else if (event === 'pusher:subscription_error') {
      out({ ev: 'subscription_error', channel: channel.name, data });
    } else {
      out({ ev: 'event', channel: channel.name, event, data, user_id: meta ? meta.user_id : undefined });
    }
  });
}

function echoChannel(kind, name) {
  if (kind === 'private') return echo.private(name);
  if (kind === 'encryptedPrivate') return echo.encryptedPrivate(name);
  if (kind === 'join') return echo.join(name);
  return echo.channel(name);
}

const handlers = {
  connect(cmd) {
    if (cmd.lib === 'echo') {
      const opts = { broadcaster: 'pusher', key: cmd.key, Pusher, ...options(cmd) };
      if (cmd.authEndpoint) {
        delete opts.channelAuthorization;
        opts.authEndpoint = cmd.authEndpoint;
        opts.auth = { headers: cmd.headers || {} };
      }
      echo = new Echo(opts);
      pusher = echo.connector.pusher;
    } else {
      pusher = new Pusher(cmd.key, options(cmd));
    }
    watch(pusher);
  },
  subscribe(cmd) {
    bindChannel(pusher.subscribe(cmd.channel));
  },
  bind(cmd) {
    // Named bindings get the metadata (user_id of presence client events); global ones do not.
    pusher.channel(cmd.channel).bind(cmd.event, (data, meta) =>
      out({ ev: 'bound_event', channel: cmd.channel, event: cmd.event, data, user_id: meta ? meta.user_id : null }));
  },
  unsubscribe(cmd) {
    pusher.unsubscribe(cmd.channel);
    out({ ev: 'unsubscribed', channel: cmd.channel });
  },
  trigger(cmd) {
    const ok = pusher.channel(cmd.channel).trigger(cmd.event, cmd.data);
    out({ ev: 'triggered', channel: cmd.channel, ok });
  },
  signin() {
    pusher.signin();
    for (const name of ['online', 'offline']) {
      pusher.user.watchlist.bind(name, (event) => out({ ev: 'watchlist', name, user_ids: event.user_ids }));
    }
  },
  socket_id() {
    out({ ev: 'socket_id', id: pusher.connection.socket_id || null });
  },
  disconnect() {
    pusher.disconnect();
  },
  echo_listen(cmd) {
    const ch = echoChannel(cmd.kind, cmd.channel);
    ch.listen(cmd.event, (data) => out({ ev: 'echo_event', channel: cmd.channel, event: cmd.event, data }));
    ch.subscribed(() => out({ ev: 'subscribed', channel: cmd.channel, via: 'echo' }));
    ch.error((err) => out({ ev: 'subscription_error', channel: cmd.channel, data: err }));
  },
  echo_listen_to_all(cmd) {
    const ch = echoChannel(cmd.kind, cmd.channel);
    ch.listenToAll((event, data) => out({ ev: 'echo_all', channel: cmd.channel, event, data }));
    ch.subscribed(() => out({ ev: 'subscribed', channel: cmd.channel, via: 'echo' }));
  },
  echo_join(cmd) {
    echo.join(cmd.channel)
      .here((users) => out({ ev: 'here', channel: cmd.channel, users }))
      .joining((user) => out({ ev: 'joining', channel: cmd.channel, user }))
      .leaving((user) => out({ ev: 'leaving', channel: cmd.channel, user }))
      .error((err) => out({ ev: 'subscription_error', channel: cmd.channel, data: err }));
  },
  echo_listen_whisper(cmd) {
    echoChannel(cmd.kind || 'private', cmd.channel)
      .listenForWhisper(cmd.event, (data) => out({ ev: 'whisper', channel: cmd.channel, event: cmd.event, data }));
  },
  echo_whisper(cmd) {
    echoChannel(cmd.kind || 'private', cmd.channel).whisper(cmd.event, cmd.data);
    out({ ev: 'whispered', channel: cmd.channel });
  },
  echo_leave(cmd) {
    echo.leave(cmd.channel);
    out({ ev: 'left', channel: cmd.channel });
  },
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
    handlers[cmd.cmd](cmd);
  } catch (err) {
    out({ ev: 'command_error', cmd: cmd && cmd.cmd, message: String(err && err.stack || err) });
  }
});
rl.on('close', () => {
  if (pusher) pusher.disconnect();
  setTimeout(() => process.exit(0), 50);
});
out({ ev: 'ready' });
