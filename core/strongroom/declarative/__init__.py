"""Declarative configuration: a file that describes vaults, their policies, items and
alert sinks (``strongroom apply FILE``, ``strongroom export-config``; ``docs/declarative.md``).

- :mod:`.spec`: the format, its strict reading (one line, exit code 6, naming the key's
  dotted path, for anything it refuses) and its JSON Schema (``docs/strongroom.schema.json``);
- :mod:`.plan`: the difference between the file and each vault, and applying it (never
  deleting an item, a policy or a vault);
- :mod:`.export`: a file that describes existing vaults, which applies back as no change.
"""

from __future__ import annotations

from .export import describe_vault, policy_options, to_toml
from .plan import Change, VaultPlan, apply_plan, plan_vault
from .spec import ConfigSpec, ItemSpec, SinkSpec, VaultSpec, json_schema, parse_config, read_config

__all__ = [
    "Change", "ConfigSpec", "ItemSpec", "SinkSpec", "VaultPlan", "VaultSpec", "apply_plan", "describe_vault",
    "json_schema", "parse_config", "plan_vault", "policy_options", "read_config", "to_toml",
]
