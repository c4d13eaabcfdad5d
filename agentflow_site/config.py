"""One place that reads and checks every setting from the environment.

settings.py reads each variable through `CheckedEnv`. A value that is not what its variable
takes is not an exception with a traceback: it becomes a `ConfigProblem` naming the variable,
its value (masked when it is a secret), what is wrong and an example of a right one, and the
setting falls back to its default so that Django can still load. The problems are then
reported together, before anything runs:

- by every `manage.py` command that runs Django's system checks (migrate, runworker,
  qcluster, check, runserver…), as errors `agentflow.E100`;
- by the web server (agentflow_site/asgi.py), which prints them and exits with status 2.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import Any

import environ

CREDENTIAL = re.compile(r":[^\s:/@]+@")
"""The password of `user:password@host`, wherever it stands."""
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|API_KEY|_KEY$|DSN", re.IGNORECASE)
TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off"})


def shown(name: str, value: str) -> str:
    """`value` as a message may show it: a secret masked, a URL's password left out."""
    if SECRET_NAME.search(name):
        return f"'{value[:2]}…' (masked, {len(value)} characters)" if value else "''"
    # user:password@host, in a URL or in a value too malformed to parse as one
    return repr(CREDENTIAL.sub(":***@", value)[:200])


@dataclass(frozen=True)
class ConfigProblem:
    name: str
    value: str
    problem: str
    example: str

    def line(self) -> str:
        example = f" Example: {self.name}={self.example}" if self.example else ""
        return f"{self.name}={shown(self.name, self.value)}: {self.problem}.{example}"


class CheckedEnv(environ.Env):
    """django-environ's Env, but a bad value is a recorded problem, never an exception."""

    def __init__(self, **scheme: Any) -> None:
        super().__init__(**scheme)
        self.problems: list[ConfigProblem] = []

    def refuse(self, name: str, problem: str, example: str = "") -> None:
        """Record that `name` (as set in the environment) is wrong."""
        value = self.ENVIRON.get(name, "")
        if not any(p.name == name for p in self.problems):  # the first word on a variable wins
            self.problems.append(ConfigProblem(name, str(value), problem.rstrip("."), example))

    def refused(self, name: str) -> bool:
        return any(p.name == name for p in self.problems)

    def _checked(self, name: str, default: Any, kind: str, example: str, read: Any) -> Any:
        try:
            return read()
        except (ValueError, TypeError, json.JSONDecodeError):
            self.refuse(name, f"is not {kind}", example or _example(default))
            return default

    def int(self, var: str, default: Any = environ.Env.NOTSET, example: str = "") -> Any:
        read = lambda: super(CheckedEnv, self).int(var, default=default)  # noqa: E731
        return self._checked(var, default, "a whole number", example, read)

    def float(self, var: str, default: Any = environ.Env.NOTSET, example: str = "") -> Any:
        read = lambda: super(CheckedEnv, self).float(var, default=default)  # noqa: E731
        return self._checked(var, default, "a number", example, read)

    def json(self, var: str, default: Any = environ.Env.NOTSET, example: str = "") -> Any:
        read = lambda: super(CheckedEnv, self).json(var, default=default)  # noqa: E731
        return self._checked(var, default, "JSON", example or "{}", read)

    def bool(self, var: str, default: Any = environ.Env.NOTSET) -> Any:
        """true/false (also 1/0, yes/no, on/off); anything else is a problem, never False."""
        raw = self.ENVIRON.get(var)
        if raw is None or raw == "":
            return default
        word = raw.strip().lower()
        if word in TRUE:
            return True
        if word in FALSE:
            return False
        self.refuse(var, "is neither true nor false", "false" if default else "true")
        return default

    def number(self, name: str, default: Any, example: str = "") -> Any:
        """The variable as a number of the default's type (int or float)."""
        raw = self.ENVIRON.get(name, "").strip()
        if raw == "":
            return default
        try:
            return type(default)(raw)
        except ValueError:
            kind = "a whole number" if isinstance(default, int) else "a number"
            self.refuse(name, f"is not {kind}", example or _example(default))
            return default


def _example(default: Any) -> str:
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, int | float) and not isinstance(default, bool):
        return str(default)
    if isinstance(default, dict | list):
        return json.dumps(default) if default else ""
    return ""


def report(problems: list[ConfigProblem]) -> str:
    count = "is" if len(problems) == 1 else "are"
    lines = [f"AgentFlow cannot start: {len(problems)} setting(s) {count} wrong."]
    lines += [f"  {p.line()}" for p in problems]
    return "\n".join(lines)


def exit_if_misconfigured() -> None:
    """For processes that run no system checks (the web server): print the problems, exit 2."""
    from django.conf import settings

    problems = getattr(settings, "CONFIG_PROBLEMS", [])
    if problems:
        print(report(problems), file=sys.stderr)
        raise SystemExit(2)
