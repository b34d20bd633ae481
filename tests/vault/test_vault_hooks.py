"""The vault calls every vault, recovery-point and job hook at the documented moment."""

from __future__ import annotations

import pytest

from strongroom.markers import hookimpl
from strongroom.plugins import PluginHost
from strongroom.vault import Vault


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    @hookimpl
    def strongroom_vault_created(self, vault):
        self.calls.append(("vault_created", vault.vault_id))

    @hookimpl
    def strongroom_vault_opened(self, vault):
        self.calls.append(("vault_opened", vault.vault_id))

    @hookimpl
    def strongroom_before_backup(self, vault, item):
        self.calls.append(("before_backup", item.name))

    @hookimpl(wrapper=True)
    def strongroom_backup_wrapper(self, vault, item):
        self.calls.append(("wrapper_enter", item.name))
        try:
            point = yield
            self.calls.append(("wrapper_point", point.point_id))
            return point
        finally:
            self.calls.append(("wrapper_exit", item.name))

    @hookimpl
    def strongroom_point_created(self, vault, point):
        self.calls.append(("point_created", point.point_id))

    @hookimpl
    def strongroom_after_backup(self, vault, item, point):
        self.calls.append(("after_backup", point.point_id))

    @hookimpl
    def strongroom_after_restore(self, vault, point, target):
        self.calls.append(("after_restore", target))

    @hookimpl
    def strongroom_job_finished(self, vault, job):
        self.calls.append(("job_finished", job.type, job.state))


@pytest.fixture
def recorded(tmp_path):
    recorder = Recorder()
    plugins = PluginHost.create(extra_plugins=[("recorder", recorder)])
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("hello")
    url = str(tmp_path / "vault")
    vault = Vault.create(url, plugins=plugins)
    vault.protect("files", "docs", {"paths": [str(src)]})
    return recorder, vault, plugins, url, src


class TestVaultHooks:
    def test_vault_created_and_opened(self, recorded):
        """strongroom_vault_created fires on create, strongroom_vault_opened on open only."""
        recorder, vault, plugins, url, _ = recorded
        assert recorder.calls == [("vault_created", vault.vault_id)]
        Vault.open(url, plugins=plugins)
        assert recorder.calls[-1] == ("vault_opened", vault.vault_id)

    def test_backup_hooks_in_order(self, recorded):
        """Backup calls before_backup, the wrapper around it, point_created, after_backup, job_finished."""
        recorder, vault, *_ = recorded
        recorder.calls.clear()
        point = vault.backup("docs")
        assert recorder.calls == [
            ("before_backup", "docs"),
            ("wrapper_enter", "docs"),
            ("wrapper_point", point.point_id),
            ("wrapper_exit", "docs"),
            ("point_created", point.point_id),
            ("after_backup", point.point_id),
            ("job_finished", "backup", "completed"),
        ]

    def test_before_backup_can_abort_and_the_job_fails(self, recorded):
        """An exception in strongroom_before_backup aborts the backup and fails its job."""
        recorder, vault, plugins, *_ = recorded

        class Veto:
            @hookimpl
            def strongroom_before_backup(self, vault, item):
                raise RuntimeError("maintenance window")

        plugins.pm.register(Veto(), name="veto")
        with pytest.raises(RuntimeError):
            vault.backup("docs")
        assert vault.points("docs") == []
        job = vault.jobs.list(type_="backup")[-1]
        assert job.state == "failed" and "maintenance window" in job.error
        assert recorder.calls[-1] == ("job_finished", "backup", "failed")

    def test_after_restore_and_job_finished(self, recorded, tmp_path):
        """A successful restore calls strongroom_after_restore with its target, then job_finished."""
        recorder, vault, *_ = recorded
        vault.backup("docs")
        recorder.calls.clear()
        vault.restore("docs", None, str(tmp_path / "out"))
        assert recorder.calls == [
            ("after_restore", str(tmp_path / "out")),
            ("job_finished", "restore", "completed"),
        ]
