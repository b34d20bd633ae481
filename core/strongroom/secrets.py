"""Secret values that never show themselves in reprs, logs or tracebacks."""

from __future__ import annotations

import attrs


@attrs.frozen(repr=False, eq=True)
class Secret:
    """A secret byte string; ``repr`` and ``str`` show only that it is one."""

    value: bytes

    def __repr__(self) -> str:
        return "Secret(<redacted>)"

    __str__ = __repr__
