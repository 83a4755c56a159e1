"""What the config parser cannot check on its own, checked before the daemon touches a device.

That includes a library the meter's transport needs (pyserial), which `simulate`, reading the same
config without a meter, does not.

Whether a strategy's parameters are right is for its own `Params` model to say, and whether a cron
expression is valid for APScheduler to say; both are asked here, at start-up and by `check`, so that a
typo in a rule that fires next week is an exit 2 today rather than an error in the log next week.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from controller.config import Config, ConfigError, redacted
from controller.meter.settings import missing_library
from controller.service.scheduler import cron_trigger
from strategies import StrategyError, load


def preflight(cfg: Config, source: str) -> None:
    """Raise ConfigError naming every strategy or schedule rule that cannot be used."""
    missing = missing_library(cfg.meter)
    problems = ([] if missing is None else [missing]) + strategy_problems(cfg)
    if problems:
        # A token pasted as a strategy name would otherwise be echoed in "unknown strategy '…'".
        raise ConfigError(redacted(f"{source}: " + "; ".join(problems)))


def strategy_problems(cfg: Config) -> list[str]:
    """What is wrong with the `[strategy]` table and the `[[schedule]]` rules, each naming its key;
    `simulate` asks this too before it runs a config's schedule."""
    problems: list[str] = []
    try:
        load(*cfg.strategy_for(None))
    except StrategyError as exc:
        problems.append(str(exc))
    zone = ZoneInfo(cfg.site.timezone)
    for index, rule in enumerate(cfg.schedule):
        try:
            cron_trigger(rule, zone)
        except ValueError as exc:
            problems.append(
                f"schedule[{index + 1}].cron: {rule.cron!r} is not a valid cron expression ({exc})"
            )
        try:
            load(*cfg.strategy_for(rule))
        except StrategyError as exc:
            where = f"schedule[{index + 1}] (cron {rule.cron!r})"
            if exc.detail is not None:  # the rule's key is `strategy`, not the table's `strategy.name`
                problems.append(f"{where}: strategy = {rule.strategy!r}: {exc.detail}")
            else:
                problems.append(f"{where}: {exc}")
    return problems
