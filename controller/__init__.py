"""peblar-surplus: solar-surplus and main-fuse load balancing for Peblar EV chargers."""

__version__ = "0.1.0"
