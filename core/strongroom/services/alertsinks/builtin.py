"""The built-in ``alerts`` plugin: registers the ``command``, ``webhook`` and ``email``
alert sinks.  It is essential (:data:`strongroom.plugins.ESSENTIAL_PLUGINS`): security
alerts cannot be switched off, so the sinks that carry them cannot be disabled either."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...markers import hookimpl
from .command import COMMAND
from .smtp import EMAIL
from .webhook import WEBHOOK

if TYPE_CHECKING:
    from ...registry import Registry
    from . import SinkType

__all__ = ["strongroom_register_alert_sinks"]


@hookimpl
def strongroom_register_alert_sinks(registry: Registry[SinkType]) -> None:
    for sink_type in (COMMAND, WEBHOOK, EMAIL):
        registry.add(sink_type.name, sink_type)
