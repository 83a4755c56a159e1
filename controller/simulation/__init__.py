"""The simulated site: traces, the charger and car model, emulators, and the `simulate` command.

It drives the same control core (`controller.core.control.step`, whose two halves `decide` and
`decided` the daemon runs) and the same strategies as the daemon, so a number measured here is a
number about the real controller.
"""
