"""``python -m strongroom`` and the ``strongroom`` script: the command line as a process.

:func:`run` keeps the garbage collector off while the command line starts.  Importing
the command line, the plugins and their modules makes some hundred thousand objects
that all live until the process ends; collecting meanwhile finds nothing to free and
costs about 15 ms of every command.  :func:`strongroom.cli.main` turns it back on, with
what start-up made frozen (left out of later collections), before the command runs.
"""

import gc


def run() -> None:
    gc.disable()
    from strongroom.cli import main

    main()


if __name__ == "__main__":
    run()
