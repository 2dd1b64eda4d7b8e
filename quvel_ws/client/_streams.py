"""Service-wide streams (``state``, ``errors``, ``user_events``, ``global_events``)."""

from __future__ import annotations

import logging
from typing import Any

import reactivex
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from quvel_ws.client._hubs import Sink
from quvel_ws.client._loop import LoopBridge

logger = logging.getLogger(__name__)


class Broadcast:
    """A stream whose observers are isolated from each other (one raising does not stop the rest) and
    which can replay its latest value. Observers are registered on the service's loop."""

    def __init__(self, bridge: LoopBridge, replay: bool, initial: Any = None) -> None:
        self._bridge = bridge
        self._sinks: tuple[Sink, ...] = ()
        self._replay = replay
        self.value = initial
        self.completed = False

    def observable(self) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            return self._bridge.attach(lambda: self._add(observer))

        return reactivex.create(subscribe)

    def _add(self, observer: abc.ObserverBase[Any]) -> abc.DisposableBase:
        if self.completed:
            if self._replay:
                observer.on_next(self.value)
            observer.on_completed()
            return Disposable()
        sink = Sink(observer, None, None)
        self._sinks = (*self._sinks, sink)
        if self._replay:
            observer.on_next(self.value)

        def dispose() -> None:
            sink.active = False
            self._sinks = tuple(s for s in self._sinks if s is not sink)

        return Disposable(dispose)

    def emit(self, value: Any) -> None:
        self.value = value
        for sink in self._sinks:
            if not sink.active:
                continue
            try:
                sink.observer.on_next(value)
            except Exception:
                logger.exception("an observer of a WebSocketService stream raised")

    def complete(self) -> None:
        self.completed = True
        sinks, self._sinks = self._sinks, ()
        for sink in sinks:
            try:
                sink.observer.on_completed()
            except Exception:
                logger.exception("an observer of a WebSocketService stream raised on completion")
