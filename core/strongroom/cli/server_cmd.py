"""``strongroom server``: make and run a vault server, manage its users, tokens, roles and vaults.

Every admin command takes the server folder from ``--dir DIR`` or
``$STRONGROOM_SERVER_DIR`` and changes its files only; a running server reads them again
at its next request, so no restart is needed.  :mod:`strongroom.server` is imported only
when a ``server`` command runs, and needs the ``[server]`` extra (without it: one line,
exit 3).  Bad input (an unknown user, role or token, a bad ``--expires``): one line, exit 3.
"""

from __future__ import annotations

import importlib
import os

import click

from ..errors import UsageError
from .common import app, json_option
from .output import emit_json, short_time, table

SERVER_DIR_ENV = "STRONGROOM_SERVER_DIR"
_EXTRA = ("starlette", "uvicorn", "httpx", "jinja2", "prometheus_client")

dir_option = click.option("--dir", "server_dir", envvar=SERVER_DIR_ENV, metavar="DIR",
                          help=f"The server folder (env {SERVER_DIR_ENV}).")


def _check_extra() -> None:
    missing = []
    for name in _EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        from ..server.errors import ServerExtraMissing

        raise ServerExtraMissing(missing=", ".join(missing))


def _open(server_dir: str | None):
    from ..server.serverdir import ServerDir

    if not server_dir:
        raise UsageError(message=f"no server folder: pass --dir DIR or set {SERVER_DIR_ENV}")
    return ServerDir(server_dir).check()


@click.group()
def server() -> None:
    """A vault server: roles per vault, a dashboard and metrics over HTTPS (docs/server.md)."""
    _check_extra()


@server.command("init")
@click.argument("directory", metavar="DIR")
@click.option("--listen", default="127.0.0.1:8443", show_default=True, metavar="HOST:PORT")
@click.option("--tls-cert", metavar="FILE", help="The server's certificate (default: a new self-signed one).")
@click.option("--tls-key", metavar="FILE", help="The key of --tls-cert.")
@json_option
def init(directory, listen, tls_cert, tls_key, as_json):
    """Make a server folder at DIR (new or empty) and print the admin's token, once."""
    from ..server.serverdir import ServerDir

    sdir, token = ServerDir.init(directory, listen=listen, tls_cert=tls_cert, tls_key=tls_key)
    cert = sdir.resolve(sdir.config.tls_cert)
    if as_json:
        emit_json({"dir": str(sdir.path), "listen": listen, "tls_cert": str(cert), "user": "admin", "token": token})
        return
    click.echo(f"Created server folder {sdir.path} (listen {listen}, certificate {cert}).")
    click.echo("Token of user 'admin' (owner of every vault), shown only now:")
    click.echo(token)
    click.echo("Clients trust the server with --storage-option ca_file=" + str(cert))


@server.command("run")
@click.argument("directory", metavar="DIR", envvar=SERVER_DIR_ENV)
@click.option("--listen", default=None, metavar="HOST:PORT", help="Instead of the one in server.toml.")
def run(directory, listen):
    """Serve the vaults of DIR over HTTPS until SIGTERM or Ctrl-C."""
    from ..server.run import serve

    serve(directory, listen, announce=lambda line: click.echo(line, err=True))


# --- users -------------------------------------------------------------------------------


@server.group("user")
def user() -> None:
    """Users of the server."""


@user.command("add")
@click.argument("name")
@dir_option
@json_option
def user_add(name, server_dir, as_json):
    """Add user NAME (no role yet: 'server role assign' gives one)."""
    _open(server_dir).users.add_user(name)
    if as_json:
        emit_json({"user": name, "added": True})
        return
    click.echo(f"Added user '{name}'.")


@user.command("list")
@dir_option
@json_option
def user_list(server_dir, as_json):
    """List the users."""
    users = _open(server_dir).users.users()
    if as_json:
        emit_json([{"user": name} for name in users])
        return
    for name in users:
        click.echo(name)


# --- tokens ------------------------------------------------------------------------------


@server.group("token")
def token() -> None:
    """Tokens: how users prove who they are (STRONGROOM_TOKEN on the client)."""


@token.command("create")
@click.argument("name")
@click.option("--expires", metavar="30d|12h|2w|DATE", help="When the token stops working (default: never).")
@dir_option
@json_option
def token_create(name, expires, server_dir, as_json):
    """Make a token for user NAME and print it, once (only its hash is kept)."""
    from ..models import iso
    from ..server.serverdir import parse_expires

    users = _open(server_dir).users
    when = parse_expires(expires, users.clock())
    text = users.create_token(name, when)
    token_id = text.split("_")[1]
    if as_json:
        emit_json({"user": name, "token_id": token_id, "expires": iso(when) if when else None, "token": text})
        return
    click.echo(f"Token {token_id} of user '{name}'" + (f", expires {short_time(iso(when))}" if when else "")
               + ", shown only now:")
    click.echo(text)


@token.command("list")
@dir_option
@json_option
def token_list(server_dir, as_json):
    """List the tokens (never their secrets)."""
    users = _open(server_dir).users
    now = users.clock()
    rows = users.tokens()
    if as_json:
        emit_json([{"token_id": t.token_id, "user": t.user, "created": t.created, "expires": t.expires,
                    "revoked": t.revoked, "state": t.state(now)} for t in rows])
        return
    table(["ID", "USER", "CREATED", "EXPIRES", "STATE"],
          [[t.token_id, t.user, short_time(t.created), short_time(t.expires), t.state(now)] for t in rows])


@token.command("revoke")
@click.argument("token_id", metavar="ID")
@dir_option
@json_option
def token_revoke(token_id, server_dir, as_json):
    """Revoke token ID: refused from the next request on."""
    _open(server_dir).users.revoke(token_id)
    if as_json:
        emit_json({"token_id": token_id, "revoked": True})
        return
    click.echo(f"Revoked token {token_id}.")


# --- roles -------------------------------------------------------------------------------


@server.group("role")
def role() -> None:
    """Roles of users on vaults: reader, operator, contributor, owner."""


def _need(value, flag):
    if not value:
        raise UsageError(message=f"missing {flag}")
    return value


@role.command("assign")
@click.argument("name")
@click.option("--vault", metavar="VAULT", help="A hosted vault's name, or * for every vault.")
@click.option("--role", "role_name", metavar="ROLE", help="reader, operator, contributor or owner.")
@dir_option
@json_option
def role_assign(name, vault, role_name, server_dir, as_json):
    """Give user NAME a ROLE on VAULT (replacing the one they had there)."""
    _open(server_dir).users.assign(name, _need(vault, "--vault VAULT"), _need(role_name, "--role ROLE"))
    if as_json:
        emit_json({"user": name, "vault": vault, "role": role_name})
        return
    click.echo(f"User '{name}' is {role_name} of vault '{vault}'.")


@role.command("remove")
@click.argument("name")
@click.option("--vault", metavar="VAULT")
@dir_option
@json_option
def role_remove(name, vault, server_dir, as_json):
    """Take user NAME's role on VAULT away."""
    _open(server_dir).users.unassign(name, _need(vault, "--vault VAULT"))
    if as_json:
        emit_json({"user": name, "vault": vault, "role": None})
        return
    click.echo(f"User '{name}' has no role on vault '{vault}' any more.")


@role.command("list")
@dir_option
@json_option
def role_list(server_dir, as_json):
    """List the role assignments."""
    rows = _open(server_dir).users.assignments()
    if as_json:
        emit_json([{"user": a.user, "vault": a.vault, "role": a.role} for a in rows])
        return
    table(["USER", "VAULT", "ROLE"], [[a.user, a.vault, a.role] for a in rows])


# --- vaults ------------------------------------------------------------------------------


@server.group("vault")
def vault() -> None:
    """The vaults the server hosts."""


@vault.command("add")
@click.argument("name")
@click.option("--storage", metavar="URL", help="Where the vault is (a folder or an fsspec URL).")
@click.option("--storage-option", "options", multiple=True, metavar="KEY=VALUE",
              help="An option of the storage (repeatable), kept in server.toml.")
@click.option("--storage-option-env", "env_options", multiple=True, metavar="KEY=VAR",
              help="A secret option, read from the server's environment variable VAR when it opens the store.")
@click.option("--create", is_flag=True, help="Create a new vault there, its first key slot the server's.")
@click.option("--recovery-kit", "kit", metavar="FILE", help="Adopt an existing vault: its recovery kit.")
@click.option("--kit-passphrase-env", metavar="VAR", help="The passphrase of a protected kit, from VAR.")
@dir_option
@json_option
@click.pass_context
def vault_add(ctx, name, storage, options, env_options, create, kit, kit_passphrase_env, server_dir, as_json):
    """Host vault NAME: --create a new one, or adopt one with its --recovery-kit."""
    from ..config import parse_storage_option
    from ..server.hosted import adopt_hosted, create_hosted

    sdir = _open(server_dir)
    storage = _need(storage, "--storage URL")
    opts = dict(parse_storage_option(text) for text in options)
    for text in env_options:
        key, sep, var = text.partition("=")
        if not sep or not key.isidentifier() or not var:
            raise UsageError(message="--storage-option-env must look like KEY=VAR")
        opts[key] = {"from_env": var}
    if create == bool(kit):
        raise UsageError(message="give --create (a new vault) or --recovery-kit FILE (an existing one)")
    os.environ["STRONGROOM_HOME"] = str(sdir.home)  # the server's key store and config
    plugins = app(ctx).plugins
    if create:
        v = create_hosted(sdir, name, storage, opts, plugins)
        if as_json:
            emit_json({"name": name, "vault_id": v.vault_id, "url": v.url, "created": True})
            return
        click.echo(f"Created vault '{name}' ({v.vault_id}) at {v.url}; the server holds its first key slot.")
        click.echo(f"A recovery kit for clients: STRONGROOM_HOME={sdir.home} strongroom --vault {storage}"
                   " vault key export --output FILE")
        return
    v = adopt_hosted(sdir, name, storage, opts, plugins, _read_kit(kit), _kit_passphrase(kit_passphrase_env))
    if as_json:
        emit_json({"name": name, "vault_id": v.vault_id, "url": v.url, "created": False})
        return
    click.echo(f"Hosting vault '{name}' ({v.vault_id}) at {v.url}; the server has a key slot of its own.")


def _read_kit(path: str) -> str:
    from ..repository.recoverykit import MAX_KIT_CHARS

    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(MAX_KIT_CHARS + 1)
    except OSError as exc:
        raise UsageError(message=f"cannot read {path}: {exc.strerror}") from None


def _kit_passphrase(env_var: str | None):
    def passphrase(vault_id: str):
        from ..secrets import Secret

        if not env_var:
            raise UsageError(message="this recovery kit is protected: give --kit-passphrase-env VAR")
        if not os.environ.get(env_var):
            raise UsageError(message=f"environment variable {env_var} is not set or empty")
        return Secret(os.environ[env_var])

    return passphrase


@vault.command("list")
@dir_option
@json_option
def vault_list(server_dir, as_json):
    """List the hosted vaults (storage URLs; never their options' values)."""
    vaults = _open(server_dir).config.vaults
    if as_json:
        emit_json([{"name": v.name, "storage": v.storage, "storage_options": sorted(v.storage_options)}
                   for v in vaults.values()])
        return
    table(["NAME", "STORAGE", "OPTIONS"], [[v.name, v.storage, ", ".join(sorted(v.storage_options)) or "-"]
                                          for v in sorted(vaults.values(), key=lambda v: v.name)])
