"""Running the tools of the vm benchmarks (``bench.vm.run``, ``bench.vm.atrest``) as child processes.

:func:`sh` runs one command and captures its output; an exit code above 1 (borg's "finished
with warnings" is 1) stops the benchmark with the command and the end of its stderr.  :func:`timed` is its wall time, :func:`du` the bytes below a path.
"""

from __future__ import annotations

import os
import subprocess
import time


def sh(*argv, env=None, cwd=None, check=True, input=None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in argv], env=env, cwd=cwd, capture_output=True, text=True, input=input)
    if check and done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return done


def timed(*argv, env=None) -> float:
    started = time.perf_counter()
    sh(*argv, env=env)
    return time.perf_counter() - started


def du(path: str) -> int:
    """The bytes below ``path`` (``du -sb``); 0 where there is nothing."""
    return int(sh("du", "-sb", path).stdout.split()[0]) if os.path.exists(path) else 0
