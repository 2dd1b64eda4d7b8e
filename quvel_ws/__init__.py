"""quvel_ws: a Pusher-protocol-7 client (Laravel Echo, Reverb, Soketi, Pusher) whose channels are
RxPY Observables, and an embedded Pusher-compatible server (:mod:`quvel_ws.server`)."""
