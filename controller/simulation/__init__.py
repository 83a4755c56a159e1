"""The simulated site: traces, the charger and car model, emulators, and the `simulate` command.

It drives the same control core (`controller.core.control.step`) and the same strategies as the
daemon, so a number measured here is a number about the real controller.
"""
