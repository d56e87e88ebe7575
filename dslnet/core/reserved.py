"""Names users' ops may not take, as the layer that owns them declares.

The op registry checks a user's op when it registers, but which words the spec
language keeps for itself (its keywords, its builtins) is the front end's knowledge,
not the ops'. The front end declares them here (`dslnet.frontend.vocabulary`, at
`import dslnet`), so the check stands before any op can register, and the ops never
import the front end.
"""

from __future__ import annotations

from collections.abc import Callable

NameCheck = Callable[[str], str | None]
"""Given an op's name, the problem with it (a sentence), or None when it is free."""

_checks: dict[str, NameCheck] = {}


def reserve(owner: str, check: NameCheck) -> None:
    """Declare (or replace) `owner`'s check of op names."""
    _checks[owner] = check


def name_problems(name: str) -> list[str]:
    """What every declared check says against an op named `name`."""
    return [problem for check in _checks.values() if (problem := check(name)) is not None]
