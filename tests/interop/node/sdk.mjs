// The official Node server SDK (pusher 5.3.4) against a server's HTTP API: prints one JSON line with
// what each call answered. Usage: node sdk.mjs PORT [SECRET]
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.NODE_PATH, 'index.js'));
const Pusher = require('pusher');

const [port, secret = 'app-secret'] = process.argv.slice(2);
const pusher = new Pusher({ appId: '1', key: 'app-key', secret, host: '127.0.0.1', port, useTLS: false });

async function call(fn) {
  try {
    const res = await fn();
    return { status: res.status, body: await res.json() };
  } catch (err) {
    return { status: err.status, body: err.body };
  }
}

const result = {
  trigger: await call(() => pusher.trigger('sdk-news', 'FromNode', { n: 1 })),
  triggerMany: await call(() => pusher.trigger(['sdk-news', 'sdk-other'], 'Many', { n: 2 }, { info: 'subscription_count' })),
  batch: await call(() => pusher.triggerBatch([{ channel: 'sdk-news', name: 'Batched', data: { n: 3 } }])),
  channels: await call(() => pusher.get({ path: '/channels', params: { filter_by_prefix: 'sdk-', info: 'subscription_count' } })),
  channel: await call(() => pusher.get({ path: '/channels/sdk-news', params: { info: 'subscription_count' } })),
  users: await call(() => pusher.get({ path: '/channels/presence-sdk/users' })),
  terminate: await call(() => pusher.terminateUserConnections('42')),
};
process.stdout.write(JSON.stringify(result) + '\n');
