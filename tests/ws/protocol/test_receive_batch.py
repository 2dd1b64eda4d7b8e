"""``receive_batch`` (the driver's one call per socket read) behaves as ``receive`` frame by frame."""

from __future__ import annotations

import random

from quvel_ws.protocol import ErrorRaised, ProtocolConfig, PusherProtocol

URL = "ws://127.0.0.1:6001/app/app-key?protocol=7"
FRAMES = [
    '{"event":"pusher:connection_established","data":"{\\"socket_id\\":\\"1.2\\",\\"activity_timeout\\":30}"}',
    '{"event":"pusher_internal:subscription_succeeded","channel":"orders"}',
    '{"event":"OrderShipped","channel":"orders","data":"{\\"id\\":7}"}',
    "not json",
    '{"event":"OrderShipped","channel":["orders"],"data":{}}',
    '{"event":"OrderShipped","channel":"orders","data":"plain","user_id":5}',
    '{"event":"pusher:ping"}',
]


def connected_core() -> PusherProtocol:
    proto = PusherProtocol(ProtocolConfig(url=URL), rng=random.Random(1))
    proto.subscribe("orders", 0.0)
    proto.connect(0.0)
    proto.transport_opened(0.0)
    proto.events_to_process()
    return proto


def test_one_batch_equals_frame_by_frame() -> None:
    one_by_one = connected_core()
    for frame in FRAMES:
        one_by_one.receive(frame, 1.0)
    batched = connected_core()
    batched.receive_batch(FRAMES, 1.0)
    expected = one_by_one.events_to_process()

    def comparable(outputs: list[object]) -> list[object]:  # errors compare by type and text
        return [(type(o.error), str(o.error)) if isinstance(o, ErrorRaised) else o for o in outputs]

    assert comparable(batched.events_to_process()) == comparable(expected)
    assert [type(o.error).__name__ for o in expected if isinstance(o, ErrorRaised)] == [
        "ProtocolError",
        "ProtocolError",
    ]
    assert batched.next_deadline() == one_by_one.next_deadline() == 31.0
