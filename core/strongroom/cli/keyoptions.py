"""``--key-option K=V`` (repeatable): the options a key provider takes for a new key slot.

Parsed into a ``{K: V}`` dict (a later K replaces an earlier one); an option without ``=``
or with an empty name is refused with one line (UsageError).  Which names a provider takes
is its own business (:func:`strongroom.repository.keyproviders.check_options`).
"""

from __future__ import annotations

import click

from ..errors import UsageError


def _parse(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for value in values or ():
        name, sep, given = value.partition("=")
        if not sep or not name.strip():
            raise UsageError(message=f"--key-option {value!r}: give it as NAME=VALUE")
        options[name.strip()] = given
    return options


key_option = click.option(
    "--key-option", "key_options", metavar="K=V", multiple=True, callback=_parse,
    help="An option of the key provider for the new slot, e.g. token=LABEL (repeatable; see the provider's docs).")
