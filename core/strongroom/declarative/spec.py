"""The declarative file's format, its strict reading, and its JSON Schema.

One set of definitions (:data:`VAULT`, :data:`POLICY`, :data:`ITEM`, :data:`SINK`) is
both what :func:`read_config` checks a file against and what :func:`json_schema` writes
(``docs/strongroom.schema.json``; a test keeps the two equal).  Reading promises:

- every key is known: an unknown one is refused with its dotted path
  (``vaults.main.items.docs.exclud``), as is a value of the wrong type;
- an item's workload is one a plugin registered, its keys are the options of
  ``strongroom protect WORKLOAD`` (``path``, ``exclude``...: the long option without its
  dashes) or ``source`` (the item's source document as stored, for what options cannot
  say), and its policy is one the same vault's table defines;
- a policy is built as ``policy create`` builds it (a bad schedule or retention is
  refused here, before any vault is touched); a sink's type is registered and takes the
  options given (a value may be ``{ from_env = "VAR" }`` or ``{ from_file = "PATH" }``,
  read now, so the secret need not sit in the file).

Every refusal is one :class:`~strongroom.errors.ConfigFileInvalid` (exit code 6) naming
the file and the dotted path.  Reading writes nothing and opens no vault.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Mapping

import attrs
import click

from ..errors import ConfigFileInvalid, StrongroomError
from ..models import ITEM_NAME_RE
from ..plugins import PluginHost
from ..policy.options import policy_from_options
from ..policy.record import Policy

__all__ = ["ConfigSpec", "ItemSpec", "SinkSpec", "VaultSpec", "json_schema", "read_config", "parse_config"]

SCHEMA_ID = "https://strongroom.invalid/strongroom.schema.json"


@attrs.frozen
class Key:
    """One key of a table: its JSON type (``string``, ``integer``, ``boolean``), the
    values it may take (``choices``), whether it must be there, and a line of help."""

    type: str
    help: str
    required: bool = False
    choices: tuple[str, ...] = ()


#: A vault: where it is and how its storage keeps copies (its name is its table's key).
VAULT: dict[str, Key] = {
    "url": Key("string", "The vault's URL: a local folder or an fsspec URL.", required=True),
    "redundancy": Key("string", "How the storage keeps copies (default local).", choices=("local", "zonal", "geo")),
    "secondary": Key("string", "For redundancy geo: the store in another location."),
}
#: The vault's sub-tables, each a table of named entries.
VAULT_TABLES = ("policies", "items", "sinks")

#: A policy: the options of ``strongroom policy create`` (dashes as underscores).
POLICY: dict[str, Key] = {
    "every": Key("string", "Every N hours: 1h, 2h, 4h, 6h, 8h or 12h."),
    "daily": Key("string", "Every day at these local times: HH:MM[,HH:MM...]."),
    "weekly": Key("string", "On these weekdays at these times: DAYS@TIMES, e.g. sun@03:00."),
    "timezone": Key("string", "IANA timezone of the times and of the retention periods (default UTC)."),
    "keep_daily": Key("integer", "Keep the first point of each day N days."),
    "keep_weekly": Key("integer", "Keep the first point of each week N weeks."),
    "weekly_on": Key("string", "The day weeks start on (default sun).",
                     choices=("mon", "tue", "wed", "thu", "fri", "sat", "sun")),
    "keep_monthly": Key("integer", "Keep the first point of each month N months."),
    "monthly_on": Key("string", "Months start on their first day or their last (default first).",
                      choices=("first", "last")),
    "keep_yearly": Key("integer", "Keep the first point of each year N years."),
    "description": Key("string", "A note shown by 'policy show'."),
    "drill_every": Key("string", "Run a restore drill of each item's latest point this often, e.g. 7d."),
    "drill_from_secondary": Key("boolean", "Drill from the vault's geo secondary."),
}

#: An item: these keys, plus the options of ``strongroom protect WORKLOAD``.
ITEM: dict[str, Key] = {
    "workload": Key("string", "The workload that backs the item up (files, postgres, vm, or a plugin's).",
                    required=True),
    "policy": Key("string", "The policy the item follows: one of this vault's policies."),
}
#: ``source``: the item's source document as stored, instead of the workload's options.
ITEM_SOURCE = "source"

#: An alert sink: its type, which job alerts it receives, and the type's options.
SINK: dict[str, Key] = {
    "type": Key("string", "The sink's type: command, webhook, email, or a plugin's.", required=True),
    "category": Key("string", "Which job alerts it receives (default all); security alerts always.",
                    choices=("all", "job", "security")),
}
SINK_OPTIONS = "options"


# --- the records a file reads into ------------------------------------------------------


@attrs.frozen
class ItemSpec:
    """An item as the file describes it: ``options`` are protect's, by parameter name
    (``paths``, ``excludes``), or ``source`` is the document itself."""

    name: str
    workload: str
    policy: str | None = None
    options: Mapping[str, Any] = attrs.field(factory=dict)
    source: Mapping[str, Any] | None = None


@attrs.frozen
class SinkSpec:
    name: str
    type: str
    category: str = "all"
    options: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class VaultSpec:
    name: str
    url: str
    redundancy: str = "local"
    secondary: str | None = None
    policies: tuple[Policy, ...] = ()
    items: tuple[ItemSpec, ...] = ()
    sinks: tuple[SinkSpec, ...] = ()


@attrs.frozen
class ConfigSpec:
    """What a declarative file says: its vaults, in the file's order."""

    file: str
    vaults: tuple[VaultSpec, ...] = ()


# --- reading ------------------------------------------------------------------------------


def read_config(path: str | os.PathLike, plugins: PluginHost) -> ConfigSpec:
    """The file at ``path`` read and checked (see the module docstring)."""
    name = str(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise ConfigFileInvalid(file=name, where="(file)", reason=f"cannot be read ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileInvalid(file=name, where="(syntax)", reason=f"not TOML: {exc}") from None
    return parse_config(doc, plugins, file=name)


def parse_config(doc: Mapping[str, Any], plugins: PluginHost, *, file: str = "strongroom.toml") -> ConfigSpec:
    """``doc`` (a TOML document as a dict) checked into a :class:`ConfigSpec`."""
    reader = _Reader(file, plugins)
    reader.table(doc, "", {}, extra=("vaults",))
    vaults = reader.table_of(doc.get("vaults", {}), "vaults")
    specs = tuple(reader.vault(name, body, f"vaults.{name}") for name, body in vaults.items())
    seen: dict[str, str] = {}
    for spec in specs:
        url = spec.url.rstrip("/")
        if url in seen:
            raise ConfigFileInvalid(file=file, where=f"vaults.{spec.name}.url",
                                    reason=f"the same URL as vault {seen[url]!r}")
        seen[url] = spec.name
    return ConfigSpec(file=file, vaults=specs)


@attrs.define
class _Reader:
    file: str
    plugins: PluginHost

    def fail(self, where: str, reason: str) -> ConfigFileInvalid:
        return ConfigFileInvalid(file=self.file, where=where or "(top)", reason=reason)

    def table_of(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a table, not {_kind(value)}")
        return value

    def table(self, body: Any, where: str, keys: Mapping[str, Key], extra: tuple[str, ...] = ()) -> dict[str, Any]:
        """``body``'s keys of ``keys`` checked (type, choices, required); ``extra`` keys are
        let through for the caller; any other key is refused."""
        body = self.table_of(body, where or "(top)")
        for key, value in body.items():
            at = f"{where}.{key}" if where else key
            if key in extra:
                continue
            if key not in keys:
                known = ", ".join([*keys, *extra])
                raise self.fail(at, f"unknown key (expected one of: {known})")
            self.value(value, keys[key], at)
        for key, spec in keys.items():
            if spec.required and key not in body:
                raise self.fail(f"{where}.{key}" if where else key, "missing (it is required)")
        return body

    def value(self, value: Any, spec: Key, at: str) -> None:
        wanted = {"string": str, "integer": int, "boolean": bool}[spec.type]
        if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
            raise self.fail(at, f"must be {_article(spec.type)}, not {_kind(value)}")
        if spec.choices and value not in spec.choices:
            raise self.fail(at, f"must be one of {', '.join(spec.choices)}, not {value!r}")

    def vault(self, name: str, body: Any, where: str) -> VaultSpec:
        body = self.table(body, where, VAULT, extra=VAULT_TABLES)
        policies = self.table_of(body.get("policies", {}), f"{where}.policies")
        built = tuple(self.policy(p, spec, f"{where}.policies.{p}") for p, spec in policies.items())
        for policy in built:
            if policy.drill is not None and policy.drill.from_secondary and body.get("redundancy") != "geo":
                raise self.fail(f"{where}.policies.{policy.name}.drill_from_secondary",
                                "needs a vault with redundancy geo (a secondary to drill from)")
        names = {p.name for p in built}
        items = self.table_of(body.get("items", {}), f"{where}.items")
        sinks = self.table_of(body.get("sinks", {}), f"{where}.sinks")
        redundancy = body.get("redundancy", "local")
        if (redundancy == "geo") != ("secondary" in body):
            raise self.fail(f"{where}.secondary", "is needed with redundancy geo, and only with it")
        return VaultSpec(
            name=name, url=os.path.expanduser(body["url"]), redundancy=redundancy, secondary=body.get("secondary"),
            policies=built, items=tuple(self.item(i, spec, f"{where}.items.{i}", names) for i, spec in items.items()),
            sinks=tuple(self.sink(s, spec, f"{where}.sinks.{s}") for s, spec in sinks.items()),
        )

    def policy(self, name: str, body: Any, where: str) -> Policy:
        body = self.table(body, where, POLICY)
        try:
            return policy_from_options(name, dict(body))
        except StrongroomError as exc:
            raise self.fail(where, str(exc)) from None

    def item(self, name: str, body: Any, where: str, policies: set[str]) -> ItemSpec:
        body = self.table_of(body, where)
        if not ITEM_NAME_RE.match(name):
            raise self.fail(where, "an item name is 1-64 letters, digits, '.', '_' or '-', starting with a letter"
                                   " or digit")
        workload = body.get("workload")
        if not isinstance(workload, str):
            raise self.fail(f"{where}.workload", "missing (it is required)" if workload is None
                            else f"must be a string, not {_kind(workload)}")
        if workload not in self.plugins.workloads.names():
            raise self.fail(f"{where}.workload", f"unknown workload {workload!r} (installed:"
                                                 f" {', '.join(self.plugins.workloads.names())})")
        params = option_params(self.plugins, workload)
        body = self.table(body, where, ITEM, extra=(ITEM_SOURCE, *params))
        policy = body.get("policy")
        if policy is not None and policy not in policies:
            raise self.fail(f"{where}.policy", f"unknown policy {policy!r} (this vault's file defines:"
                                               f" {', '.join(sorted(policies)) or 'none'})")
        given = {key: self.option(params[key], value, f"{where}.{key}") for key, value in body.items()
                 if key in params}
        source = body.get(ITEM_SOURCE)
        if source is not None:
            self.table_of(source, f"{where}.{ITEM_SOURCE}")
            if given:
                raise self.fail(f"{where}.{next(iter(given))}", f"give the workload's options or '{ITEM_SOURCE}',"
                                                               " not both")
        return ItemSpec(name=name, workload=workload, policy=policy,
                        options={params[k].name: v for k, v in given.items()}, source=source)

    def option(self, param: click.Parameter, value: Any, at: str) -> Any:
        """A protect option's value from the file, as click would have parsed it."""
        if isinstance(param, click.Option) and param.is_flag:
            if not isinstance(value, bool):
                raise self.fail(at, f"must be a boolean, not {_kind(value)}")
            return value
        values = value if param.multiple else [value]
        if param.multiple and not isinstance(value, list):
            raise self.fail(at, f"must be an array, not {_kind(value)}")
        converted = []
        for element in values:
            if not isinstance(element, (str, int, float)) or isinstance(element, bool):
                raise self.fail(at, f"must be {'an array of strings' if param.multiple else 'a string'},"
                                    f" not {_kind(value)}")
            try:
                converted.append(param.type.convert(element, param, None))
            except click.BadParameter as exc:
                raise self.fail(at, exc.format_message()) from None
        return tuple(converted) if param.multiple else converted[0]

    def sink(self, name: str, body: Any, where: str) -> SinkSpec:
        body = self.table(body, where, SINK, extra=(SINK_OPTIONS,))
        registry = self.plugins.alert_sinks
        if body["type"] not in registry.names():
            raise self.fail(f"{where}.type", f"unknown sink type {body['type']!r} (installed:"
                                             f" {', '.join(registry.names())})")
        raw = self.table_of(body.get(SINK_OPTIONS, {}), f"{where}.{SINK_OPTIONS}")
        options = {key: self.sink_option(value, f"{where}.{SINK_OPTIONS}.{key}") for key, value in raw.items()}
        try:
            registry.get(body["type"]).validate(name, options)
        except StrongroomError as exc:
            raise self.fail(f"{where}.{SINK_OPTIONS}", str(exc)) from None
        return SinkSpec(name=name, type=body["type"], category=body.get("category", "all"), options=options)

    def sink_option(self, value: Any, at: str) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and len(value) == 1 and set(value) <= {"from_env", "from_file"}:
            (how, where), = value.items()
            if how == "from_env":
                if where not in os.environ:
                    raise self.fail(at, f"wants environment variable {where}, which is not set")
                return os.environ[where]
            try:
                return Path(os.path.expanduser(where)).read_text().rstrip("\n")
            except OSError as exc:
                raise self.fail(at, f"cannot read {where} ({exc.strerror})") from None
        raise self.fail(at, f"must be a string, {{ from_env = \"VAR\" }} or {{ from_file = \"PATH\" }},"
                            f" not {_kind(value)}")


def option_params(plugins: PluginHost, workload: str) -> dict[str, click.Parameter]:
    """The options of ``protect WORKLOAD`` by their key in the file: the long option
    without its dashes (``path``, ``exclude``, ``one-file-system``)."""
    found: dict[str, click.Parameter] = {}
    for param in plugins.workloads.get(workload)().protect_params():
        if not isinstance(param, click.Option) or param.name in ("policy", "item"):
            continue
        longest = max(param.opts, key=len)
        found[longest.lstrip("-")] = param
    return found


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


# --- the JSON Schema ------------------------------------------------------------------------


def _properties(keys: Mapping[str, Key]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, key in keys.items():
        prop: dict[str, Any] = {"type": key.type, "description": key.help}
        if key.choices:
            prop["enum"] = list(key.choices)
        out[name] = prop
    return out


def _object(keys: Mapping[str, Key], extra: dict[str, Any] | None = None, *, closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": {**_properties(keys), **(extra or {})}}
    required = [name for name, key in keys.items() if key.required]
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


def _named(definition: str) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": {"$ref": f"#/$defs/{definition}"}}


def json_schema() -> dict[str, Any]:
    """The JSON Schema of the file, from the definitions above.  An item's workload
    options depend on the installed plugins, so the schema lets any option name through
    with an option's types; ``strongroom apply`` checks them against the workload."""
    option_value = {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "boolean"},
                              {"type": "array", "items": {"type": ["string", "integer"]}}]}
    secret_ref = {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
                  "properties": {"from_env": {"type": "string"}, "from_file": {"type": "string"}}}
    item = _object(ITEM, {ITEM_SOURCE: {"type": "object", "description": "The item's source document as stored"
                                                                         " (instead of the workload's options)."}},
                   closed=False)
    item["additionalProperties"] = option_value
    item["description"] = "A protected item: these keys and the options of 'strongroom protect WORKLOAD'."
    sink = _object(SINK, {SINK_OPTIONS: {"type": "object", "description": "The sink type's options.",
                                         "additionalProperties": {"oneOf": [{"type": "string"}, secret_ref]}}})
    vault = _object(VAULT, {name: _named(definition) for name, definition in
                            (("policies", "policy"), ("items", "item"), ("sinks", "sink"))})
    vault["description"] = "A vault, named by its key under 'vaults'."
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "strongroom declarative configuration (strongroom apply)",
        "type": "object",
        "additionalProperties": False,
        "properties": {"vaults": _named("vault")},
        "$defs": {"vault": vault, "policy": _object(POLICY), "item": item, "sink": sink},
    }
