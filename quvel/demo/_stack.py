"""The whole local stack in one ``async with``: a Pusher server (embedded, or any running one such as
Soketi), the simulated Laravel back end, and a front-end app (container + stores) per user."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from quvel.demo._pusher import PusherCredentials
from quvel.demo.backend import DEFAULT_USERS, DemoBackend, DemoUser
from quvel_store import App, create_app
from quvel_store.container import ServiceContainer
from quvel_ws import WebSocketService
from quvel_ws.server import AppConfig, PusherServer

#: A fixed 32-byte master key so ``private-encrypted-`` channels work out of the box (demo only: in
#: production it is a secret, like Laravel's ``PUSHER_ENCRYPTION_MASTER_KEY_BASE64``).
DEMO_MASTER_KEY = b"quvel-demo-master-key-32-bytes!!"


@dataclass
class DemoClient:
    """One user's front end: a container (config, an ``api`` carrying the user's token, ``ws``) and an app."""

    user: DemoUser
    container: ServiceContainer
    app: App

    @property
    def ws(self) -> WebSocketService:
        return self.container.ws

    async def close(self) -> None:
        """Dispose the stores (their channels are released) and shut the services down."""
        self.app.dispose()
        await self.container.shutdown()


@dataclass
class DemoStack:
    """A running server and back end; :meth:`client` makes front ends, closed with the stack."""

    ws_url: str
    backend: DemoBackend
    server: PusherServer | None = None
    tenant_id: str = "acme"
    clients: list[DemoClient] = field(default_factory=list)

    def user(self, user: DemoUser | int | str) -> DemoUser:
        if isinstance(user, DemoUser):
            return user
        for candidate in self.backend.users.values():
            if user in (candidate.id, candidate.name):
                return candidate
        raise KeyError(f"no demo user {user!r}; known: {[u.name for u in self.backend.users.values()]}")

    async def client(self, user: DemoUser | int | str, config: Mapping[str, Any] | None = None) -> DemoClient:
        """A booted front end signed in as ``user`` (a bearer token), pointing at this stack."""
        who = self.user(user)
        settings = {
            "tenant_id": self.tenant_id,
            "api_url": self.backend.url,
            "ws_url": self.ws_url,
            **(config or {}),
        }
        container = ServiceContainer(config=settings)
        container.api.set_token(who.token)
        await container.boot()
        client = DemoClient(who, container, create_app(container=container))
        self.clients.append(client)
        return client

    async def close_client(self, client: DemoClient) -> None:
        if client in self.clients:
            self.clients.remove(client)
            await client.close()


@contextlib.asynccontextmanager
async def demo_stack(
    *,
    ws_url: str | None = None,
    credentials: PusherCredentials | None = None,
    tenant_id: str = "acme",
    seed: int | None = None,
) -> AsyncIterator[DemoStack]:
    """Start the stack. With no ``ws_url`` an embedded server is started (client events on); otherwise
    the back end publishes to ``credentials.http_url`` and clients connect to ``ws_url`` (e.g. Soketi)."""
    async with contextlib.AsyncExitStack() as exit_stack:
        server: PusherServer | None = None
        if ws_url is None:
            app = AppConfig(id="1", key="app-key", secret="app-secret", enable_client_events=True)
            server = await exit_stack.enter_async_context(PusherServer(apps=[app]))
            ws_url = server.ws_url
            credentials = PusherCredentials(server.http_url, app.id, app.key, app.secret, DEMO_MASTER_KEY)
        elif credentials is None:
            raise ValueError("pass the server's credentials (HTTP API URL, app id, key, secret) with ws_url")
        backend = await exit_stack.enter_async_context(
            DemoBackend(credentials, tenant_id=tenant_id, users=DEFAULT_USERS, seed=seed)
        )
        stack = DemoStack(ws_url, backend, server, tenant_id)
        try:
            yield stack
        finally:
            for client in reversed(stack.clients):
                await client.close()
            stack.clients.clear()
