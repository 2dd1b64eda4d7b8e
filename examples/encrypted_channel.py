"""An end-to-end encrypted channel (``private-encrypted-``): the back end encrypts with a key derived from
its master key, the WebSocket server relays ciphertext it cannot read, and the client decrypts with the
``shared_secret`` its auth request returned.

``python examples/encrypted_channel.py`` prints the plaintext the store holds and shows that whispers are
refused on such channels, then exits 0.
"""

from __future__ import annotations

import asyncio
import logging

from pydantic import BaseModel

from quvel.demo import demo_stack, next_value, wait_until
from quvel_store import Store, action
from quvel_ws import ClientEventError


class Secret(BaseModel):
    name: str
    value: str


class VaultState(BaseModel):
    secrets: dict[str, str] = {}


class VaultStore(Store[VaultState]):
    id = "vault"

    @action
    def open(self, vault_id: int) -> None:
        channel = self.container.ws.channel(f"vault.{vault_id}", type="encrypted")
        self.connect(channel.listen("SecretShared", model=Secret), self._store)

    def _store(self, secret: Secret) -> None:
        self.patch({"secrets": {secret.name: secret.value}})  # a mapping patch deep-merges dicts


async def run() -> int:
    async with demo_stack() as stack:
        client = await stack.client("Ann")
        vault = client.app.use(VaultStore)
        vault.open(1)
        channel = client.ws.channel("vault.1", type="encrypted")
        await next_value(channel.subscribed)

        # The back end encrypts; the server relays {"nonce": ..., "ciphertext": ...} it cannot read.
        await stack.backend.broadcast(
            "private-encrypted-vault.1",
            "App\\Events\\SecretShared",  # what Laravel broadcasts for an App\Events\SecretShared event
            {"name": "db-password", "value": "correct horse battery staple"},
        )
        await wait_until(vault, lambda s: "db-password" in s.secrets)
        print("decrypted in the store:", vault.state.secrets)

        # Client events are refused on encrypted channels (the server could not check them).
        try:
            channel.whisper("typing", {})
        except ClientEventError as exc:
            print("whisper refused:", exc)
        return 0 if vault.state.secrets == {"db-password": "correct horse battery staple"} else 1


def main() -> int:
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(run())


if __name__ == "__main__":
    raise SystemExit(main())
