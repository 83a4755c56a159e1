"""config.toml: the user's whole configuration, validated once at start-up.

Every table forbids unknown keys, so a typo fails at start-up naming the key instead of being silently
ignored. `load` raises `ConfigError` with one line that names the key and says how to fix it; the CLI
prints it and exits with status 2.
"""

from __future__ import annotations

import errno
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from controller.core.state import SiteLimits
from controller.errortext import TOKEN_LIKE
from controller.meter.settings import MeterSettings

ENV_CONFIG = "PEBLAR_SURPLUS_CONFIG"
ENV_TOKEN = "PEBLAR_SURPLUS_TOKEN"  # noqa: S105 - the variable's name, not a secret
SYSTEM_CONFIG = Path("/etc/peblar-surplus/config.toml")
CHARGER_REQUESTS_PER_S = 5
"""The charger's request budget, shared by all its clients (peblar-api.md §3); beyond it, 429 answers."""
URL_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and the fix."""


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class SiteConfig(_Table):
    voltage_v: float = Field(230.0, ge=100, le=260, description="nominal phase voltage")
    main_fuse_a: float = Field(25.0, ge=6, le=250, description="rating of the main fuse per phase")
    timezone: str = Field("UTC", description="IANA time zone for [[schedule]] rules and the simulator")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as 'Europe/Berlin'"
            ) from exc
        return value


class ChargerConfig(_Table):
    url: str = Field(description="the charger's address, e.g. http://192.168.1.50")
    token: SecretStr | None = None
    token_file: Path | None = Field(
        None,
        strict=False,  # TOML has no path type: the string becomes one
        description="file holding the token; a relative name is looked up in $CREDENTIALS_DIRECTORY "
        "under systemd, else next to the config file",
    )
    min_current_a: float = Field(6.0, ge=6, le=32)
    max_current_a: float = Field(16.0, ge=6, le=32, description="the charger's or the cable's maximum")
    phase_rotation: str = Field("L1L2L3", description="grid phases wired to the charger's L1, L2, L3")
    timeout_s: float = Field(3.0, gt=0, le=30)
    max_requests_per_s: float = Field(
        2.0, gt=0, description="our share of the charger's 5 requests/s budget (shared with HA etc.)"
    )
    _config_dir: Path | None = PrivateAttr(None)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        example = "write it as http://<charger-ip>, e.g. http://192.168.1.50"
        value = value.strip()  # a space pasted after the address
        shown = _without_userinfo(value)  # a password in the URL must not be echoed either
        if any(c.isspace() for c in value):
            raise ValueError(f"{shown!r} has a space in it; {example}")
        scheme, sep, rest = value.partition("://")
        if sep and URL_SCHEME.fullmatch(scheme):
            if scheme.lower() not in ("http", "https"):
                # 'is not a URL' would be wrong and no help: it is one, for another protocol
                raise ValueError(f"{shown!r}: the charger's API speaks HTTP, not {scheme}://; {example}")
            value = f"{scheme.lower()}://{rest}"
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"{shown!r} is not a URL; {example}")
        try:
            parts = urlsplit(value)
            port = parts.port  # raises for a port outside 0–65535
        except ValueError as exc:
            raise ValueError(f"{shown!r} is not a valid URL ({exc}); {example}") from None
        if not parts.hostname or port == 0 or max(map(len, parts.hostname.split("."))) > 63:
            raise ValueError(f"{shown!r} names no host; {example}")
        if TOKEN_LIKE.search(parts.hostname):
            raise ValueError(f"{shown!r}: its host name looks like an API token; {example}")
        if parts.path.rstrip("/").startswith("/api"):
            raise ValueError(f"{shown!r}: give only the charger's address, the API path is added; {example}")
        if parts.query or parts.fragment or parts.username or parts.password or TOKEN_LIKE.search(parts.path):
            raise ValueError(
                f"{shown!r}: give only the charger's address; the token goes into token or token_file, "
                f"not into the URL; {example}"
            )
        return value.rstrip("/")

    @field_validator("max_requests_per_s")
    @classmethod
    def _within_budget(cls, value: float) -> float:
        """More than the charger allows gets 429 answers, for Home Assistant and the app as well."""
        if value > CHARGER_REQUESTS_PER_S:
            raise ValueError(
                f"{value:g} is above {CHARGER_REQUESTS_PER_S}, the charger's limit shared by all its "
                "clients (this controller, Home Assistant, the app); beyond it the charger answers "
                f"429 Too Many Requests to all of them; give at most {CHARGER_REQUESTS_PER_S}, better "
                "the default 2, which leaves the others room"
            )
        return value

    @field_validator("phase_rotation")
    @classmethod
    def _rotation(cls, value: str) -> str:
        phases = [value[i : i + 2].upper() for i in range(0, len(value), 2)]
        if sorted(phases) != ["L1", "L2", "L3"]:
            raise ValueError(f"{value!r} must name L1, L2 and L3 once each, e.g. 'L2L3L1'")
        return "".join(phases)

    def rotation(self) -> tuple[int, int, int]:
        a, b, c = (int(self.phase_rotation[i + 1]) - 1 for i in (0, 2, 4))
        return (a, b, c)

    def resolved_token(self) -> str:
        """The API token: `$PEBLAR_SURPLUS_TOKEN`, else `token`, else the contents of `token_file`."""
        return self.credential()[0]

    def credential(self) -> tuple[str, str]:
        """The API token and where it came from (`$PEBLAR_SURPLUS_TOKEN`, `charger.token`, or
        `charger.token_file` with its path), for the message when the charger rejects it.

        A token with a line break, a space or a non-ASCII letter cannot go into an HTTP header; saying so
        here beats the HTTP library's protocol error (and never echoes the token).
        """
        token, source = self._token()
        if not (token.isascii() and token.isprintable() and " " not in token):
            raise ConfigError(
                f"{source}: contains a line break, a space or a non-ASCII character, which no Peblar "
                "token has; copy it again from the charger's web UI (Settings > Advanced)"
            )
        if source == "charger.token_file" and self.token_file is not None:
            source = redacted(f"{source} ({self._token_path(self.token_file).absolute()})")
        return token, source

    def _token_path(self, path: Path) -> Path:
        """Under systemd a relative name is a credential (`LoadCredential`); by hand (`check`, a dry
        run before installing the unit) the same name is the file next to the config, which is where
        the README installs it, so one config works both ways."""
        if path.is_absolute():
            return path
        credentials = os.environ.get("CREDENTIALS_DIRECTORY")
        if credentials:
            return Path(credentials) / path
        if self._config_dir is not None:
            return self._config_dir / path
        return path

    def _token(self) -> tuple[str, str]:
        """The token and where it came from, for the messages.

        An empty one is an error naming its source, not a token: the charger answers it with 401, which
        sends the user to copy a token that was never the problem. An empty `$PEBLAR_SURPLUS_TOKEN`
        (`Environment=PEBLAR_SURPLUS_TOKEN=` left in a unit) is one too, rather than passed over, as it
        is set on purpose to win over the config.
        """
        env = os.environ.get(ENV_TOKEN)
        if env is not None:
            if env.strip():
                return env.strip(), f"${ENV_TOKEN}"
            raise ConfigError(
                f"${ENV_TOKEN}: set but empty; unset it to use the config's token or token_file, "
                "or set it to the API token"
            )
        if self.token is not None:
            token = self.token.get_secret_value()
            if not token.strip():
                then = "; token_file is used then" if self.token_file is not None else ""
                raise ConfigError(
                    "charger.token: empty; put the API token from the charger's web UI "
                    f"(Settings > Advanced) between the quotes, or remove the key{then}"
                )
            return token, "charger.token"
        if self.token_file is not None:
            path = self._token_path(self.token_file)
            try:
                # utf-8-sig: Notepad's byte-order mark is no part of the token
                token = path.read_text(encoding="utf-8-sig").strip()
            except UnicodeDecodeError:
                raise ConfigError(
                    redacted(
                        f"charger.token_file: {path} is not plain text (UTF-16, as PowerShell's '>' "
                        "writes, or another encoding); save the token in it as ASCII or UTF-8, e.g. "
                        "with: printf '%s' 'TOKEN' > FILE"
                    )
                ) from None
            except OSError as exc:
                if exc.errno == errno.EACCES:
                    hint = "; run as a user that may read it (sudo)"
                elif exc.errno == errno.ENOENT:
                    hint = (
                        "; write the API token from the charger's web UI (Settings > Advanced) into it, "
                        f"or set charger.token or ${ENV_TOKEN} instead"
                    )
                else:
                    hint = ""
                raise ConfigError(
                    redacted(f"charger.token_file: cannot read {path.absolute()} ({exc.strerror}){hint}")
                ) from exc
            if not token:
                raise ConfigError(
                    redacted(
                        f"charger.token_file: {path} is empty; write the API token from the charger's "
                        "web UI (Settings > Advanced) into it"
                    )
                )
            return token, "charger.token_file"
        raise ConfigError(
            f"charger.token: no API token; set token or token_file in [charger], or ${ENV_TOKEN} "
            "(the token is on the charger's web UI, Settings > Advanced)"
        )


class ControlConfig(_Table):
    interval_s: float = Field(5.0, ge=1, le=300)
    dry_run: bool = False
    stale_after_s: float = Field(20.0, gt=0, description="blind after this long without valid data")
    fallback_current_a: float = Field(0.0, ge=0, description="current when blind; 0 pauses")
    exit_state: Literal["pause", "fallback", "keep"] = "pause"
    min_phase_switch_interval_s: float = Field(300.0, ge=30)
    pause_before_phase_up: bool = True
    reassert_s: float = Field(60.0, ge=5)
    max_increase_a_per_cycle: float | None = Field(None, gt=0)


class StrategyConfig(BaseModel):
    """`name` plus the strategy's own parameters, which its `Params` model validates."""

    model_config = ConfigDict(extra="allow")
    name: str = "pv"

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class ScheduleRule(_Table):
    cron: str = Field(
        description="five fields as in crontab: minute hour day month day_of_week (0 and 7 are Sunday, "
        "1 is Monday), e.g. '0 22 * * mon-fri' or '0 22 * * 1-5'"
    )
    strategy: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} needs five fields: minute hour day month day_of_week")
        return value


class Config(_Table):
    site: SiteConfig = Field(default_factory=SiteConfig)
    meter: MeterSettings
    charger: ChargerConfig
    control: ControlConfig = Field(default_factory=ControlConfig)
    strategy: StrategyConfig = Field(default_factory=StrategyConfig)
    schedule: list[ScheduleRule] = Field(default_factory=list)

    def strategy_for(self, rule: ScheduleRule | None) -> tuple[str, dict[str, Any]]:
        """(name, parameters) of the strategy to run while `rule` is active (None: no rule).

        A rule naming the `[strategy]` table's strategy starts from that table's parameters and
        overrides those it sets: the shipped example switches back to `pv` every morning, and a
        home battery's `reserve_w` tuned there must not be dropped by it.
        """
        if rule is None:
            return self.strategy.name, self.strategy.params
        if rule.strategy == self.strategy.name:
            return rule.strategy, {**self.strategy.params, **rule.params}
        return rule.strategy, dict(rule.params)

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        charger, control, site = self.charger, self.control, self.site
        if charger.min_current_a > charger.max_current_a:
            raise ValueError(
                "charger.min_current_a: larger than max_current_a; lower it or raise max_current_a"
            )
        if charger.max_current_a > site.main_fuse_a:
            raise ValueError(
                f"charger.max_current_a: {charger.max_current_a:g} A is above site.main_fuse_a "
                f"({site.main_fuse_a:g} A) and could never be drawn safely; lower it to at most the fuse"
            )
        fallback = control.fallback_current_a
        if fallback and not charger.min_current_a <= fallback <= charger.max_current_a:
            raise ValueError(
                f"control.fallback_current_a: {fallback:g} A is neither 0 (pause) nor between "
                f"charger.min_current_a ({charger.min_current_a:g}) "
                f"and max_current_a ({charger.max_current_a:g})"
            )
        if control.stale_after_s < control.interval_s:
            raise ValueError(
                "control.stale_after_s: shorter than control.interval_s; every cycle would be blind"
            )
        return self

    def site_limits(self) -> SiteLimits:
        return SiteLimits(
            voltage_v=self.site.voltage_v,
            main_fuse_a=self.site.main_fuse_a,
            min_current_a=self.charger.min_current_a,
            max_current_a=self.charger.max_current_a,
            phase_rotation=self.charger.rotation(),
            stale_after_s=self.control.stale_after_s,
            fallback_current_a=self.control.fallback_current_a,
            min_phase_switch_interval_s=self.control.min_phase_switch_interval_s,
            pause_before_phase_up=self.control.pause_before_phase_up,
            max_increase_a_per_cycle=self.control.max_increase_a_per_cycle,
            reassert_s=self.control.reassert_s,
        )


def find(explicit: str | None) -> Path:
    """`-c`, then `$PEBLAR_SURPLUS_CONFIG`, then `./config.toml`, then `/etc/peblar-surplus/config.toml`."""
    if explicit is not None and not explicit.strip():
        # `-c "$CFG"` with the variable unset: looking further would run with another config unawares
        raise ConfigError(
            "-c: an empty file name; give the config file, e.g. -c /etc/peblar-surplus/config.toml"
        )
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_CONFIG)
    if env is not None and not env.strip():
        raise ConfigError(
            f"${ENV_CONFIG}: set but empty; unset it, or set it to the config file, "
            "e.g. /etc/peblar-surplus/config.toml"
        )
    if env:
        return Path(env)
    local = Path("config.toml")
    if local.exists():
        return local
    if SYSTEM_CONFIG.exists():
        return SYSTEM_CONFIG
    raise ConfigError(
        f"no configuration: pass -c FILE, set ${ENV_CONFIG}, or create ./config.toml "
        f"or {SYSTEM_CONFIG} (the repository's config.toml is a commented example)"
    )


STAND_INS: Mapping[str, Mapping[str, str]] = {
    "meter": {"preset": "sdm630", "host": "meter.invalid"},
    "charger": {"url": "http://charger.invalid"},
}
"""Where `simulate` is given no [meter] table, or a [charger] table without `url`: it talks to neither
device, so a config written to try a site (a larger fuse, a 32 A cable) need not make them up.
`.invalid` names never resolve (RFC 2606)."""


def load(path: Path, *, devices: bool = True) -> Config:
    """The config at `path`; with `devices=False` (`simulate`) the meter and the charger's address
    may be left out (`STAND_INS`)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))  # a BOM (Notepad) is no TOML error
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file in UTF-8; save it as UTF-8 text (TOML)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    if not devices:
        raw.setdefault("meter", dict(STAND_INS["meter"]))
        charger = raw.setdefault("charger", {})
        if isinstance(charger, dict):
            charger.setdefault("url", STAND_INS["charger"]["url"])
    cfg = parse(raw, source=str(path))
    cfg.charger._config_dir = path.parent  # where a relative token_file lies outside systemd
    return cfg


def parse(raw: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {describe_error(exc)}") from None


def describe_error(exc: ValidationError) -> str:
    """Every problem on one line, the first in full: the dotted key, what is wrong, and what to do.

    All of them, so that a config with three typos takes one round trip to fix rather than three.
    """
    problems = [redacted(_describe_problem(error)) for error in exc.errors()]
    if len(problems) == 1:
        return problems[0]
    return f"{problems[0]}; and {len(problems) - 1} more: " + "; ".join(problems[1:])


def _without_userinfo(url: str) -> str:
    """The URL with any `user:password@` replaced, for error messages."""
    return re.sub(r"://[^/?#]*@", "://<user info hidden>@", url, count=1)


def redacted(message: str) -> str:
    """The message with anything that looks like an API token hidden.

    Users paste the token into the wrong key (`url`, `token_file`, the meter's host); the error about
    that key must not copy it into the terminal or the journal.
    """
    return TOKEN_LIKE.sub("<hidden: looks like an API token>", message)


def _key(loc: tuple[str | int, ...]) -> str:
    """A problem's key as a user finds it in the file: `schedule[1].cron` for the first
    [[schedule]] rule, counted from 1 like the rules a user reads."""
    key = ""
    for part in loc:
        key += f"[{part + 1}]" if isinstance(part, int) else f".{part}" if key else part
    return key


def _describe_problem(error: Any) -> str:
    loc = [str(part) for part in error["loc"]]
    key = _key(tuple(error["loc"])) or "(top level)"
    kind = error["type"]
    msg = error["msg"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key; check the spelling against the example config.toml"
    if kind == "missing" and len(loc) == 1:
        return f"[{key}]: required table is missing; add it (the example config.toml has one)"
    if kind == "missing" and any(isinstance(part, int) for part in error["loc"]):
        return f"{key}: required key is missing; add it to that [[{loc[0]}]] entry"
    if kind == "missing":
        return f"{key}: required key is missing; add it to the [{loc[0]}] table"
    if kind == "list_type" and key == "schedule":
        return "schedule: write each rule as [[schedule]], with double brackets (a list of tables)"
    if kind in ("model_type", "model_attributes_type", "dict_type") and len(loc) == 1:
        given = error.get("input")
        return f"{key}: must be a table, written [{key}] on a line of its own, its keys below (got {given!r})"
    text = str(msg).removeprefix("Value error, ")
    if kind == "value_error" and (not loc or text.startswith((f"{key}.", f"{key}:"))):
        return text  # a table's own check names the key already
    given = error.get("input")
    if kind != "value_error" and not isinstance(given, dict) and "token" not in key:
        return f"{key}: {text} (got {given!r}){_unquote_hint(kind, given)}"
    return f"{key}: {text}"


def _unquote_hint(kind: str, given: object) -> str:
    """TOML keeps the quotes' meaning: `main_fuse_a = "25"` is a string, and the fix is to drop them."""
    if not isinstance(given, str):
        return ""
    if kind.startswith("bool_") and given.strip().lower() in ("true", "false"):
        return f"; write it without quotes: {given.strip().lower()}"
    if kind.startswith(("float_", "int_")):
        try:
            float(given)
        except ValueError:
            return ""
        return f"; write it without quotes: {given.strip()}"
    return ""
