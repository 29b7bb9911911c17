"""The error a stage config raises from `__post_init__` when a value is out of its range.

A config does not know where it sits (`calibrate`, `variants.int8.search`), so the error keeps the key relative
to its config and the engine adds the place: the message then names the override that fixes it.
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class BadSetting(ValueError):
    """`key` relative to the config that raised; `why` follows "`key=value`" in the message."""

    def __init__(self, key: str, value: Any, why: str) -> None:
        self.key, self.value, self.why = key, value, why
        super().__init__(self.at(""))

    def at(self, prefix: str) -> str:
        """The message with the config's place (`calibrate.`) in front of the key."""
        value = self.value.value if isinstance(self.value, Enum) else self.value
        shown = str(value).lower() if isinstance(value, bool) or value is None else value
        return f"`{prefix}{self.key}={shown}`{self.why}"
