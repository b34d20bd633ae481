"""An item-level restore as one transaction: our SQL, ``pg_restore``'s script, our SQL.

:func:`run_script` streams the dump from the vault into ``pg_restore -L LIST -f -``,
which writes the SQL of the selected entries, and pipes that through to ``psql`` (with
``ON_ERROR_STOP``) between ``BEGIN`` + ``before`` and ``after`` + ``COMMIT``.  The dump
reaches ``pg_restore`` through a Unix socket (see :func:`.parallel.input_socket`).  The
``COMMIT`` is written only once ``pg_restore`` has exited with success: when it fails
half-way (a damaged dump, say), ``psql`` is killed and the server rolls its transaction
back; an SQL error stops ``psql`` at once, which rolls back too.  Either way nothing is changed and the error line is returned (``psql``'s first,
else ``pg_restore``'s).  Both tools are children tied to strongroom
(:func:`strongroom.start_child`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
from typing import Callable

from strongroom import Entry, PointContext, start_child

from . import server as pgserver
from .parallel import input_socket

_COPY = 1 << 20


def run_script(ctx: PointContext, entry: Entry, restore_argv: list[str], psql_argv: list[str],
               env: dict[str, str], before: str, after: str,
               progress: Callable[[int], None] | None = None) -> str | None:
    """Run the restore (see the module docstring); the error line, or None on success."""
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        psql = start_child(psql_argv, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err)
        ours, theirs = input_socket()
        with theirs:
            restore = start_child(restore_argv, env=env, stdin=theirs, stdout=subprocess.PIPE, stderr=restore_err)
        failures: list[BaseException] = []

        def feed() -> None:
            try:
                with ours, ours.makefile("wb") as out:
                    ctx.write_stream(entry, out, progress=progress)  # type: ignore[arg-type]
            except (BrokenPipeError, ConnectionResetError):
                pass  # pg_restore stopped reading: it had what it needed, or it failed
            except BaseException as exc:  # noqa: BLE001 - raised again below
                failures.append(exc)
                restore.kill()

        feeder = threading.Thread(target=feed, name="pg-restore-feed", daemon=True)
        feeder.start()
        psql_failed = False
        try:
            try:
                psql.stdin.write(("BEGIN;\n" + before).encode())  # type: ignore[union-attr]
                shutil.copyfileobj(restore.stdout, psql.stdin, _COPY)  # type: ignore[arg-type]
                code = restore.wait()
                feeder.join()
                if code == 0 and not failures:
                    psql.stdin.write((after + "COMMIT;\n").encode())  # type: ignore[union-attr]
                    psql.stdin.close()  # type: ignore[union-attr]
                else:
                    psql.kill()  # its session ends without COMMIT: the server rolls it back
            except BrokenPipeError:
                psql_failed = True  # psql stopped on an error
                restore.kill()
            psql_code = psql.wait()
            code = restore.wait()
            feeder.join()
        except BaseException:
            for proc in (restore, psql):
                proc.kill()
                proc.wait()
            feeder.join(timeout=10)
            raise
        finally:
            restore.stdout.close()  # type: ignore[union-attr]
        if failures:
            raise failures[0]
        if psql_failed or (psql_code != 0 and code == 0):
            psql_err.seek(0)
            return pgserver.tool_error(psql_err.read(64 * 1024).decode("utf-8", "replace"))
        if code != 0:
            restore_err.seek(0)
            return pgserver.tool_error(restore_err.read(64 * 1024).decode("utf-8", "replace"))
        return None
