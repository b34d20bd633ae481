"""A small process that starts the benchmarked commands and reports their resource usage.

Why not start them from the benchmark itself: Linux carries the peak RSS of the process
that forks a child over into the child's ``ru_maxrss`` (``exec`` records the old memory
map's high-water mark).  The benchmark holds numpy, manifests and more (100+ MiB), which
would then be the floor of every tool's peak RSS.  This script imports only ``json``,
``os``, ``subprocess`` and ``time`` and runs with ``-I -S``: about 11 MiB, the floor
reported with the results, below the peak of any of the compared tools.

Protocol, one JSON object per line: on stdin ``{"argv", "env", "cwd", "log"}``; on
stdout ``{"code", "wall", "cpu", "maxrss", "hwm"}`` (``maxrss`` in KiB; ``hwm`` is the
spawner's own peak RSS in KiB).  The first line out is ``{"hwm": KIB}``.  The child's output goes to ``log``.out and
``log``.err.  Started by :class:`bench.measure.Spawner`; reads until stdin closes.
"""

import json
import os
import subprocess
import sys
import time


def _hwm() -> int:
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmHWM:")))


def serve() -> None:
    print(json.dumps({"hwm": _hwm()}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        log = request["log"]
        answer = {"code": 127, "wall": 0.0, "cpu": 0.0, "maxrss": 0}
        with open(log + ".out", "wb") as out, open(log + ".err", "wb") as err:
            started = time.perf_counter()
            try:
                proc = subprocess.Popen(request["argv"], env=request["env"], cwd=request["cwd"],
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=err)
            except OSError as exc:
                err.write(f"cannot start: {exc}\n".encode())
            else:
                _, status, usage = os.wait4(proc.pid, 0)
                wall = time.perf_counter() - started
                proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4 already
                answer = {"code": proc.returncode, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                          "maxrss": usage.ru_maxrss}
        print(json.dumps({**answer, "hwm": _hwm()}), flush=True)


if __name__ == "__main__":
    serve()
