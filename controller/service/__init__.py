"""Orchestration: the control cycle, the scheduler and the systemd glue around the pure core."""
