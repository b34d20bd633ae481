"""bench/RESULTS.md: the comparison tables, the targets, and every raw run."""

from __future__ import annotations

import statistics

import attrs

from bench.compare import OPS, SCALE_OPS, Sample
from bench.measure import MIB, TreeSize
from bench.tools import command_lines, settings_of

__all__ = ["Results", "render"]

#: Operations whose strongroom/restic wall ratio must be at most RATIO_TARGET.
RATIO_TARGETS = ("first", "unchanged", "mutated", "restore", "verify")
RATIO_TARGET = 0.5
#: The single-file restore, start-up included, in seconds.
SINGLE_FILE_TARGET = 0.3
VAULT_TARGET = "vault size after the mutation <= 1.00x restic's"


@attrs.frozen
class Results:
    """Everything one ``python -m bench`` run measured, and how."""

    command: str
    machine: str
    versions: dict[str, str]
    tools: list[str]
    runs: int
    scale_runs: int
    scale_files: int
    scale_bytes: int
    quick: bool
    corpus_path: str
    corpus: TreeSize
    by_kind: dict[str, int]
    single_file: str
    single_size: int
    samples: list[Sample]
    startup: dict[str, list[float]]
    index: dict[str, float]
    rss_floor_kib: int
    seconds: float
    cold_repositories: bool
    #: where the restores wrote (bench.restorefs), as the method says it
    restores: str = ""


@attrs.frozen
class _Row:
    """Medians of one (tool, operation) over the runs."""

    wall: float
    cpu: float
    rss_mib: float
    vault: TreeSize | None


def _medians(samples: list[Sample]) -> dict[tuple[str, str], _Row]:
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.tool, s.op), []).append(s)
    rows = {}
    for key, group in groups.items():
        vaults = [s.vault for s in group if s.vault]
        vault = (TreeSize(int(statistics.median(v.disk for v in vaults)),
                          int(statistics.median(v.apparent for v in vaults)), vaults[0].files)
                 if vaults else None)
        rows[key] = _Row(statistics.median(s.measurement.wall for s in group),
                         statistics.median(s.measurement.cpu for s in group),
                         statistics.median(s.measurement.rss_mib for s in group), vault)
    return rows


def _mib(size: TreeSize | None) -> str:
    return f"{size.disk / MIB:.1f} ({size.apparent / MIB:.1f})" if size else ""


def _table(rows: dict, ops: dict[str, str], tools: list[str]) -> list[str]:
    lines = ["| operation | tool | median wall s | CPU s | peak RSS MiB | vault MiB on disk (apparent) "
             "| strongroom/tool wall |", "|---|---|---:|---:|---:|---:|---:|"]
    for op, label in ops.items():
        ours = rows.get(("strongroom", op))
        for tool in tools:
            row = rows.get((tool, op))
            if row is None:
                continue
            ratio = f"{ours.wall / row.wall:.2f}" if ours and row.wall > 0 else "-"
            vault = _mib(row.vault) if op != "verify" else ""
            lines.append(f"| {label} | {tool} | {row.wall:.2f} | {row.cpu:.2f} | {row.rss_mib:.0f} "
                         f"| {vault} | {ratio} |")
    return lines


def _vault_sizes(rows: dict, tools: list[str]) -> list[str]:
    lines = ["| vault size, MiB on disk (apparent) | after the first backup | at the end |",
             "|---|---:|---:|"]
    for tool in tools:
        first, end = rows.get((tool, "first")), rows.get((tool, "verify"))
        if first and end:
            lines.append(f"| {tool} | {_mib(first.vault)} | {_mib(end.vault)} |")
    return lines


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("met" if ok else "not met")


def _targets(r: Results, rows: dict, scale: dict) -> list[str]:
    lines = ["| target | measured | result |", "|---|---|---|"]

    def pair(op: str, table: dict = rows) -> tuple[_Row | None, _Row | None]:
        return table.get(("strongroom", op)), table.get(("restic", op))

    for op in RATIO_TARGETS:
        ours, theirs = pair(op)
        value = ours.wall / theirs.wall if ours and theirs else None
        shown = f"{value:.3f} ({ours.wall:.2f} s / {theirs.wall:.2f} s)" if value is not None else "-"
        lines.append(f"| {OPS[op]}: strongroom/restic wall <= {RATIO_TARGET} | {shown} "
                     f"| {_met(None if value is None else value <= RATIO_TARGET)} |")
    ours = rows.get(("strongroom", "restore-file"))
    lines.append(f"| single-file restore <= {SINGLE_FILE_TARGET} s (start-up included) "
                 f"| {f'{ours.wall:.2f} s' if ours else '-'} "
                 f"| {_met(None if ours is None else ours.wall <= SINGLE_FILE_TARGET)} |")
    ours, theirs = pair("mutated")
    if ours and theirs and ours.vault and theirs.vault:
        ratio = ours.vault.disk / theirs.vault.disk
        shown = (f"{ratio:.3f}x on disk ({ours.vault.disk / MIB:.1f} vs "
                 f"{theirs.vault.disk / MIB:.1f} MiB; apparent {ours.vault.apparent / MIB:.1f} vs "
                 f"{theirs.vault.apparent / MIB:.1f})")
        lines.append(f"| {VAULT_TARGET} | {shown} | {_met(ratio <= 1.0)} |")
    else:
        lines.append(f"| {VAULT_TARGET} | - | not measured |")
    both = [(rows[("strongroom", op)], rows[("restic", op)]) for op in OPS
            if ("strongroom", op) in rows and ("restic", op) in rows]
    if both:
        peak_ours, peak_theirs = max(o.rss_mib for o, _ in both), max(t.rss_mib for _, t in both)
        lines.append(f"| peak RSS <= restic's, max over operations | {peak_ours:.0f} vs "
                     f"{peak_theirs:.0f} MiB | {_met(peak_ours <= peak_theirs)} |")
        within = sum(o.rss_mib <= t.rss_mib for o, t in both)
        lines.append(f"| peak RSS <= restic's, per operation | {within} of {len(both)} operations "
                     f"| {_met(within == len(both))} |")
    else:
        lines += [f"| peak RSS <= restic's, {how} | - | not measured |"
                  for how in ("max over operations", "per operation")]
    note = "" if r.scale_files == 1_000_000 else f" ({r.scale_files:,} files measured)"
    for op, limit in (("scale-first", 1.0), ("scale-unchanged", RATIO_TARGET)):
        ours, theirs = pair(op, scale)
        label = f"1,000,000 files: {SCALE_OPS[op]} strongroom/restic wall <= {limit}"
        if ours and theirs and r.scale_files:
            value = ours.wall / theirs.wall
            lines.append(f"| {label}{note} | {value:.3f} ({ours.wall:.2f} s / {theirs.wall:.2f} s) "
                         f"| {_met(value <= limit)} |")
        else:
            lines.append(f"| {label} | - (bench/RESULTS-scale.md) | not measured here |")
    per = r.index.get("reported")
    lines.append(f"| index < 64 B per chunk | {f'{per:.1f} B' if per else '-'} "
                 f"| {_met(None if per is None else per < 64)} |")
    walls = r.startup.get("strongroom --help")
    start = statistics.median(walls) if walls else None
    lines.append(f"| CLI start-up (`strongroom --help`) < 0.3 s | {f'{start:.3f} s' if start else '-'} "
                 f"| {_met(None if start is None else start < 0.3)} |")
    return lines


def _repositories(r: Results) -> str:
    if r.cold_repositories:
        return ("Repositories are read from the disk: before each restore and verify, the bench syncs "
                "the tool's repository and drops its files from the page cache (`posix_fadvise` "
                "`DONTNEED`, `bench/pagecache.py`); the tools' own caches and key stores outside the "
                "repository are left as they are. Without that, restic and borg, which write through "
                "the page cache, would read their repositories from memory, and strongroom, which writes "
                "its packs past it (`O_DIRECT`), from the disk.")
    return ("Repositories are read as each tool left them (`--warm-repositories`): restic and borg write "
            "through the page cache, so their restores and verifies read it from memory; strongroom "
            "writes its packs past the page cache (`O_DIRECT`), so its restores and verifies read them "
            "from the disk.")


_RESTORES_WHY = (
    "Each run deletes every file its tool wrote a few seconds before the next tool restores tens of thousands "
    "of files. An ext4 without a journal then checks, for each new file, the free inodes of a group one by one "
    "for one freed in the last minutes (`recently_deleted()`), which took 40% of a restore's samples on this "
    "machine's root file system and depended on how long ago the tool before had deleted its files, so on the "
    "tools' order and speed; an ext4 with a journal does not (`bench/restorefs.py`).")


def _method(r: Results) -> list[str]:
    lines = [
        f"Each figure is the median of {r.runs} run(s). In each run every tool runs all operations on "
        "its own fresh copy of the corpus (`cp -a --sparse=always`, not timed), and the order of the "
        "tools rotates from run to run so that none always goes first. Every operation is one child "
        "process (the tool's own executable, no shell), reaped with `os.wait4`: wall time by "
        "`perf_counter`, CPU = user + system time, peak RSS = `ru_maxrss`. The children are started "
        f"by a small helper process (`bench/spawner.py`, {r.rss_floor_kib / 1024:.1f} MiB), because "
        "Linux counts the RSS of the process that forks into the child's peak: no peak RSS can read "
        "below that. The page cache is warm for the sources: each copy has just been written, so every "
        f"tool reads its source from memory. {_repositories(r)}",
        "",
        "Operations: (1) first backup into a fresh empty repository, (2) backup of the unchanged "
        "tree, (3) `bench.corpus.mutate(seed=2)` (not timed, the same change for every tool) then a "
        "backup, (4) full restore of the latest backup into an empty folder, (5) restore of one file, "
        f"`{r.single_file}` ({r.single_size / MIB:.1f} MiB), into an empty folder, (6) verify "
        "reading all data. In the first run each full restore is compared with the source (paths, "
        "sizes, SHA-256); the single-file restore's content is checked in every run. Vault size is "
        "bytes on disk (st_blocks x 512, as `du` counts) with the apparent size in parentheses, "
        "measured after each backup and after the verify (the end).",
        "",
        *([f"Restores write onto {r.restores}. {_RESTORES_WHY}", ""] if r.restores else []),
    ]
    for tool in r.tools:
        lines.append(f"- **{tool}**: {settings_of(tool)}.")
        lines += [f"  - {op}: `{line}`" for op, line in command_lines(tool)]
    return lines


def _scale(r: Results, scale: dict) -> list[str]:
    lines = ["## Scale: many small files", ""]
    if not scale:
        return [*lines, "Not run (`--scale-files 0`): `python -m bench.scale` measures 10^4, 10^5 and 10^6 "
                "files apart (bench/RESULTS-scale.md).", ""]
    return [*lines, f"{r.scale_files:,} files of 64-2,048 bytes of text ({r.scale_bytes / MIB:.0f} MiB), "
            f"1,000 to a folder, generated once; median of {r.scale_runs} alternating run(s), each into "
            "a fresh repository.", "", *_table(scale, SCALE_OPS, r.tools), ""]


def _startup_and_index(r: Results) -> list[str]:
    repeats = len(r.startup["strongroom --help"])
    lines = ["## Start-up and index memory", "",
             f"| command | median wall s of {repeats} | min | max |", "|---|---:|---:|---:|"]
    lines += [f"| `{cmd}` | {statistics.median(w):.3f} | {min(w):.3f} | {max(w):.3f} |"
              for cmd, w in r.startup.items()]
    lines += ["", "The listing commands ran on the repository of the first run, after its verify.", "",
              f"strongroom's in-memory index with {int(r.index['entries']):,} random entries "
              "(`python -m bench.indexmem`, in its own interpreter):", "",
              "| measure | bytes per entry |", "|---|---:|",
              f"| the index's own arrays (`Index.bytes_per_entry`: numpy nbytes) | {r.index['arrays']:.1f} |",
              f"| tracemalloc: allocated by `Index.add` and still held | {r.index['tracemalloc']:.1f} |",
              f"| RSS growth across `Index.add` (after `malloc_trim`) | {r.index['rss']:.1f} |",
              f"| **reported (the largest)** | **{r.index['reported']:.1f}** |", ""]
    return lines


def _appendix(r: Results) -> list[str]:
    lines = ["## Appendix: every run", "",
             "| run | order | tool | operation | wall s | CPU s | peak RSS MiB "
             "| vault MiB on disk (apparent) |",
             "|---:|---:|---|---|---:|---:|---:|---:|"]
    for s in r.samples:
        label = OPS.get(s.op) or f"scale: {SCALE_OPS[s.op]}"
        m = s.measurement
        lines.append(f"| {s.run} | {s.position} | {s.tool} | {label} | {m.wall:.3f} | {m.cpu:.3f} "
                     f"| {m.rss_mib:.1f} | {_mib(s.vault)} |")
    return lines


def render(r: Results) -> str:
    """The whole RESULTS.md."""
    rows = _medians([s for s in r.samples if s.op in OPS])
    scale = _medians([s for s in r.samples if s.op in SCALE_OPS])
    kinds = ", ".join(f"{kind} {size / MIB:.0f} MiB" for kind, size in r.by_kind.items())
    lines = ["# strongroom, restic and BorgBackup on the same corpus", ""]
    if r.quick:
        lines += ["**Quick mode** (`--quick`): a small corpus and one run, to prove that the command "
                  "works end to end; these numbers mean little.", ""]
    lines += [f"Machine: {r.machine}.", "",
              "Tools: " + "; ".join(r.versions[t] for t in r.tools) + ".", "",
              f"Corpus: `bench.corpus`, seed 1, {r.corpus.apparent / MIB:.0f} MiB apparent "
              f"({r.corpus.disk / MIB:.0f} MiB on disk) in {r.corpus.files:,} files ({kinds}; the mix: "
              "40% random binary, 30% small text files, 30% sparse disk-image-like files), at "
              f"`{r.corpus_path}`.", "",
              "## Method", "", *_method(r), "",
              "## Results", "", *_table(rows, OPS, r.tools), "", *_vault_sizes(rows, r.tools), "",
              "## Targets", "", *_targets(r, rows, scale), "",
              *_scale(r, scale), *_startup_and_index(r), *_appendix(r), "",
              f"The whole benchmark took {r.seconds / 60:.1f} minutes.", "",
              f"Command: `{r.command}`", ""]
    return "\n".join(lines)
