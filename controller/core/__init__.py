"""The pure control core: state in, commands out.

Nothing under `controller.core` reads a clock or does I/O (it logs only a failing strategy's traceback,
at DEBUG): the daemon, the simulator and the tests all drive it with time taken from `SiteState.now`,
so they exercise the same decisions.
"""
