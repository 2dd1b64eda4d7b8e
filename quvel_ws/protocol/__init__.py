"""The sans-I/O Pusher protocol core: frames and clock ticks in, actions and events out."""
