"""quvel_ws and pusher-js 8.6.0 (the reference client) on the same Soketi presence channel: each sees the
other join, and whispers go both ways."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from quvel_ws import WebSocketService
from tests.peers import SoketiServer, read_json_line, require_node_package, spawn_node
from tests.ws.conftest import AuthServer
from tests.ws.helpers import Collector, in_thread

pytestmark = pytest.mark.peers

SCRIPT = textwrap.dedent("""
    const Pusher = require('pusher-js');
    const [port, authUrl] = process.argv.slice(-2);
    const out = (o) => console.log(JSON.stringify(o));
    const p = new Pusher('app-key', {cluster: '', wsHost: '127.0.0.1', wsPort: Number(port), forceTLS: false,
      enabledTransports: ['ws'], enableStats: false,
      channelAuthorization: {endpoint: authUrl, transport: 'ajax', headers: {'X-Who': 'js'}}});
    const ch = p.subscribe('presence-interop');
    ch.bind('pusher:subscription_succeeded', (m) => out({ready: Object.keys(m.members).sort()}));
    ch.bind('pusher:member_added', (m) => out({joined: m.id, info: m.info}));
    ch.bind('client-hello', (d, meta) => { out({heard: d, from: meta && meta.user_id});
                                           ch.trigger('client-reply', {to: d.from}); });
""")


async def test_quvel_and_pusher_js_on_one_presence_channel(
    soketi: SoketiServer, auth_server: AuthServer, tmp_path: Path
) -> None:
    require_node_package("pusher-js")
    script = tmp_path / "peer.js"
    script.write_text(SCRIPT)
    auth_server.user_id, auth_server.user_info = "7", {"name": "Node"}
    node = spawn_node(script, str(soketi.port), auth_server.url + "/broadcasting/auth")
    ws = WebSocketService(soketi.ws_url, auth_endpoint=auth_server.url + "/broadcasting/auth")
    try:
        assert (await in_thread(read_json_line, node))["ready"] == ["7"]
        auth_server.user_id, auth_server.user_info = "8", {"name": "Py"}
        room = ws.join("interop")
        members = Collector(room.members)
        replies = Collector(room.listen_for_whisper("reply"))
        await members.wait(lambda items: bool(items) and {m.id for m in items[-1]} == {"7", "8"})
        joined = await in_thread(read_json_line, node)
        assert joined == {"joined": "8", "info": {"name": "Py"}}
        room.whisper("hello", {"from": "py"})
        heard = await in_thread(read_json_line, node)
        assert heard == {"heard": {"from": "py"}, "from": "8"}
        assert await replies.first() == {"to": "py"}
        node_requests = [r for r in auth_server.records if r.headers.get("x-who") == "js"]
        assert len(node_requests) == 1
        assert node_requests[0].form["channel_name"] == "presence-interop"
    finally:
        await ws.shutdown()
        node.kill()
        node.wait(5)
