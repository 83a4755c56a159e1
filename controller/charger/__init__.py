"""The charger edge: the `Charger` protocol and the Peblar REST implementation."""
