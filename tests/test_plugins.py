"""The plugin system: manager factory, entry-point loading, disabling, failures, registries.

Plugins are either registered directly (``PluginHost.create(extra_plugins=...)``) or
installed as a real distribution: a ``*.dist-info`` directory with ``entry_points.txt`` in a
temporary directory on ``sys.path``, so loading goes through ``EntryPoint.load()`` as for
any installed package.  Entry-point discovery is limited to that directory, so the
plugins installed with strongroom itself do not take part.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import types
import uuid
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from strongroom.cli.plugins_cmd import plugins_command
from strongroom.errors import DuplicateRegistration, PluginError, PluginLoadError, UnknownName
from strongroom.markers import ENTRY_POINT_GROUP, hookimpl
from strongroom.plugins import (
    DISABLE_ENV,
    ESSENTIAL_PLUGINS,
    PluginHost,
    PluginInfo,
    PluginSource,
    get_plugin_manager,
)
from strongroom.registry import Registry

PLUGIN_HEADER = "from strongroom.markers import hookimpl\n"

WORKLOAD_PLUGIN = """
class DemoWorkload:
    pass

@hookimpl
def strongroom_register_workloads(registry):
    registry.add("demo", DemoWorkload)
"""


class Distributions:
    """Writes installable distributions with ``strongroom`` entry points into one directory."""

    def __init__(self, site: Path) -> None:
        self.site = site
        self.modules: list[str] = []

    def add(self, dist: str, version: str, plugins: dict[str, str]) -> None:
        """Install *dist* whose entry points map each name to a module with the given code."""
        lines = [f"[{ENTRY_POINT_GROUP}]"]
        for name, code in plugins.items():
            module = f"sr_test_{name}_{uuid.uuid4().hex[:8]}"
            (self.site / f"{module}.py").write_text(PLUGIN_HEADER + textwrap.dedent(code))
            self.modules.append(module)
            lines.append(f"{name} = {module}")
        info = self.site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")

    def entry_points(self, **params: str) -> importlib.metadata.EntryPoints:
        """``importlib.metadata.entry_points`` restricted to the distributions written here."""
        found = [
            ep
            for dist in importlib.metadata.distributions(path=[str(self.site)])
            for ep in dist.entry_points
        ]
        return importlib.metadata.EntryPoints(found).select(**params)


@pytest.fixture(autouse=True)
def no_disable_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DISABLE_ENV, raising=False)


@pytest.fixture
def dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    installed = Distributions(site)
    monkeypatch.setattr(importlib.metadata, "entry_points", installed.entry_points)
    yield installed
    for module in installed.modules:
        sys.modules.pop(module, None)


class Named:
    """A plugin object for direct registration: hook functions become its attributes."""

    def __init__(self, **hooks: object) -> None:
        for name, function in hooks.items():
            setattr(self, name, function)


def workload_plugin(*names: str) -> Named:
    @hookimpl
    def strongroom_register_workloads(registry):
        for name in names:
            registry.add(name, object)

    return Named(strongroom_register_workloads=strongroom_register_workloads)


def info_of(host: PluginHost, name: str) -> PluginInfo:
    return next(info for info in host.plugin_infos() if info.name == name)


class TestGetPluginManager:
    def test_every_call_builds_a_new_manager(self):
        """Two calls return distinct managers; registering in one leaves the other alone."""
        first = get_plugin_manager(load_entry_points=False)
        second = get_plugin_manager(load_entry_points=False)
        assert first is not second
        first.register(workload_plugin("a"), name="a")
        assert first.has_plugin("a") and not second.has_plugin("a")

    def test_hook_specifications_are_added(self):
        """The manager knows the strongroom hooks before any plugin is loaded."""
        pm = get_plugin_manager(load_entry_points=False)
        assert pm.hook.strongroom_register_workloads.has_spec()
        assert pm.get_plugins() == set()

    def test_entry_points_of_installed_distributions_are_loaded(self, dists):
        """A plugin is registered under its entry-point name with its distribution recorded."""
        dists.add("strongroom-demo", "1.2.3", {"demo": WORKLOAD_PLUGIN})
        pm = get_plugin_manager()
        assert pm.has_plugin("demo")
        assert pm.sources["demo"] == PluginSource("strongroom-demo", "1.2.3")

    def test_no_entry_points_are_loaded_when_asked_not_to(self, dists):
        """With load_entry_points=False installed plugins are ignored."""
        dists.add("strongroom-demo", "1.2.3", {"demo": WORKLOAD_PLUGIN})
        assert not get_plugin_manager(load_entry_points=False).has_plugin("demo")


class TestDisabling:
    def test_disabled_by_argument(self, dists):
        """A disabled plugin is not imported, its hooks are not called, it is listed as blocked."""
        dists.add("strongroom-demo", "1.2.3", {"demo": "raise RuntimeError('imported')\n"})
        host = PluginHost.create(disabled=["demo"])
        assert "demo" not in host.workloads
        assert info_of(host, "demo") == PluginInfo(
            name="demo",
            distribution="strongroom-demo",
            version="1.2.3",
            hooks=(),
            registered=(),
            blocked=True,
        )

    def test_disabled_by_environment(self, dists, monkeypatch):
        """STRONGROOM_DISABLE_PLUGINS is a comma-separated list of plugin names."""
        dists.add("strongroom-demo", "1.2.3", {"demo": WORKLOAD_PLUGIN, "other": WORKLOAD_PLUGIN})
        monkeypatch.setenv(DISABLE_ENV, " demo, ,other ")
        host = PluginHost.create()
        assert len(host.workloads) == 0
        assert [(i.name, i.blocked) for i in host.plugin_infos()] == [
            ("demo", True),
            ("other", True),
        ]

    def test_argument_and_environment_add_up(self, monkeypatch):
        """Names from the argument and from the environment are both disabled."""
        monkeypatch.setenv(DISABLE_ENV, "b")
        host = PluginHost.create(
            disabled=["a"],
            extra_plugins=[("a", workload_plugin("x")), ("b", workload_plugin("y"))],
            load_entry_points=False,
        )
        assert host.workloads.names() == []
        assert host.pm.disabled == {"a", "b"}

    def test_disabled_plugin_that_is_not_installed_is_listed(self):
        """Disabling an unknown name is not an error; the listing shows it, which reveals typos."""
        host = PluginHost.create(disabled=["fles"], load_entry_points=False)
        assert info_of(host, "fles").blocked

    @pytest.mark.parametrize("how", ["argument", "environment"])
    def test_essential_plugin_cannot_be_disabled(self, monkeypatch, how):
        """Disabling 'keys' is refused with a message saying why."""
        assert "keys" in ESSENTIAL_PLUGINS
        disabled = ["keys"] if how == "argument" else []
        if how == "environment":
            monkeypatch.setenv(DISABLE_ENV, "files,keys")
        with pytest.raises(PluginError, match="plugin 'keys' is essential and cannot be disabled"):
            get_plugin_manager(disabled=disabled, load_entry_points=False)


class TestBrokenPlugins:
    def test_import_error(self, dists):
        """A plugin whose module cannot be imported is named, with the error."""
        dists.add("strongroom-broken", "0.1", {"broken": "import sr_no_such_module_at_all\n"})
        with pytest.raises(PluginLoadError) as excinfo:
            get_plugin_manager()
        assert excinfo.value.fields["plugin"] == "broken"
        assert str(excinfo.value) == (
            "Plugin 'broken' failed to load: ModuleNotFoundError: "
            "No module named 'sr_no_such_module_at_all'"
        )
        assert isinstance(excinfo.value.__cause__, ImportError)

    def test_syntax_error(self, dists):
        """A plugin module with a syntax error is named."""
        dists.add("strongroom-broken", "0.1", {"broken": "def oops(:\n"})
        with pytest.raises(PluginLoadError, match="Plugin 'broken' failed to load: SyntaxError"):
            get_plugin_manager()

    def test_bad_hookimpl_signature(self, dists):
        """An implementation asking for an argument the hook does not have is named, one line."""
        code = "@hookimpl\ndef strongroom_register_workloads(registry, colour):\n    pass\n"
        dists.add("strongroom-broken", "0.1", {"broken": code})
        with pytest.raises(PluginLoadError) as excinfo:
            get_plugin_manager()
        message = str(excinfo.value)
        assert message.startswith("Plugin 'broken' failed to load: PluginValidationError: ")
        assert "colour" in message and "\n" not in message

    def test_unknown_hook_from_entry_point(self, dists):
        """An implementation of a hook that does not exist names the plugin and the hook."""
        code = "@hookimpl\ndef strongroom_register_widgets(registry):\n    pass\n"
        dists.add("strongroom-broken", "0.1", {"fine": WORKLOAD_PLUGIN, "broken": code})
        with pytest.raises(PluginLoadError) as excinfo:
            get_plugin_manager()
        assert excinfo.value.fields["plugin"] == "broken"
        assert "strongroom_register_widgets" in str(excinfo.value)

    def test_unknown_hook_from_extra_plugin(self):
        """Directly registered plugins are checked for unknown hooks too."""

        @hookimpl
        def strongroom_vault_exploded(vault):
            pass

        plugin = Named(strongroom_vault_exploded=strongroom_vault_exploded)
        with pytest.raises(PluginLoadError, match="Plugin 'odd' failed to load: implements"):
            PluginHost.create(extra_plugins=[("odd", plugin)], load_entry_points=False)

    def test_exception_in_registration_hook(self):
        """A plugin raising while registering is named, with the exception type and message."""

        @hookimpl
        def strongroom_register_key_providers(registry):
            raise RuntimeError("no keyring")

        plugin = Named(strongroom_register_key_providers=strongroom_register_key_providers)
        with pytest.raises(PluginLoadError) as excinfo:
            PluginHost.create(extra_plugins=[("keyring", plugin)], load_entry_points=False)
        assert str(excinfo.value) == "Plugin 'keyring' failed to load: RuntimeError: no keyring"
        assert isinstance(excinfo.value.__cause__, RuntimeError)

    def test_invalid_registered_name(self):
        """A malformed name is refused and blamed on the plugin that used it."""
        with pytest.raises(PluginLoadError, match=r"Plugin 'bad' failed to load: .*'Demo'"):
            PluginHost.create(
                extra_plugins=[("bad", workload_plugin("Demo"))], load_entry_points=False
            )

    def test_same_entry_point_name_in_two_distributions(self, dists):
        """Two distributions cannot both provide a plugin of the same name."""
        dists.add("strongroom-one", "1.0", {"demo": WORKLOAD_PLUGIN})
        dists.add("strongroom-two", "1.0", {"demo": WORKLOAD_PLUGIN})
        with pytest.raises(PluginLoadError, match="Plugin 'demo' failed to load: declared by both"):
            get_plugin_manager()


class TestRegistry:
    def test_add_and_look_up(self):
        """Names are looked up, listed sorted, iterated and counted."""
        registry: Registry[int] = Registry("workload")
        registry.add("vm", 1)
        registry.add("files", 2)
        assert registry.get("vm") == 1
        assert registry.names() == list(registry) == ["files", "vm"]
        assert "files" in registry and "pg" not in registry
        assert len(registry) == 2

    def test_duplicate_names_both_plugins(self):
        """Registering a name twice is refused, naming the first and the second plugin."""
        registry: Registry[int] = Registry("workload")
        registry.add("files", 1, plugin="files")
        with pytest.raises(DuplicateRegistration) as excinfo:
            registry.add("files", 2, plugin="rival")
        assert str(excinfo.value) == (
            "Workload 'files' is registered twice (by files and by rival)."
        )
        assert registry.get("files") == 1

    def test_unknown_name_lists_known_names(self):
        """Looking up a missing name lists the known names, sorted."""
        registry: Registry[int] = Registry("key provider")
        registry.add("passphrase", 1)
        registry.add("local", 2)
        with pytest.raises(UnknownName) as excinfo:
            registry.get("tpm")
        assert str(excinfo.value) == "Unknown key provider 'tpm'; known: local, passphrase."

    def test_unknown_name_in_empty_registry(self):
        """An empty registry says so."""
        with pytest.raises(UnknownName, match="known: none"):
            Registry("workload").owner("files")

    @pytest.mark.parametrize("name", ["", "Files", "1files", "files!", "my files", None])
    def test_malformed_names_are_refused(self, name):
        """Names are lower case and start with a letter."""
        with pytest.raises(PluginError, match="invalid workload name"):
            Registry("workload").add(name, 1)  # type: ignore[arg-type]

    def test_owner_comes_from_the_current_plugin(self):
        """Inside on_behalf_of, additions are attributed to that plugin; outside, to nobody."""
        registry: Registry[int] = Registry("workload")
        with registry.on_behalf_of("files"):
            registry.add("files", 1)
            registry.add("special", 2, plugin="explicit")
        registry.add("loose", 3)
        assert [registry.owner(n) for n in ("files", "special", "loose")] == [
            "files",
            "explicit",
            None,
        ]


class TestPluginHost:
    def test_registration_hooks_record_owners(self):
        """Each plugin's registration hook runs once and its names are attributed to it."""
        calls = []

        @hookimpl
        def strongroom_register_key_providers(registry):
            calls.append("keys")
            registry.add("local", object)
            registry.add("passphrase", object)

        keys = Named(strongroom_register_key_providers=strongroom_register_key_providers)
        host = PluginHost.create(
            extra_plugins=[
                ("keys", keys),
                ("files", workload_plugin("files")),
                ("vm", workload_plugin("vm")),
            ],
            load_entry_points=False,
        )
        assert calls == ["keys"]
        assert host.workloads.names() == ["files", "vm"]
        assert host.workloads.owner("vm") == "vm"
        assert host.key_providers.owner("passphrase") == "keys"
        assert info_of(host, "keys").registered == ("key-provider:local", "key-provider:passphrase")

    def test_duplicate_across_plugins_names_both(self):
        """Two plugins registering the same workload name stop start-up, naming both."""
        with pytest.raises(DuplicateRegistration) as excinfo:
            PluginHost.create(
                extra_plugins=[
                    ("files", workload_plugin("files")),
                    ("rival", workload_plugin("files")),
                ],
                load_entry_points=False,
            )
        assert {excinfo.value.fields["first"], excinfo.value.fields["second"]} == {"files", "rival"}
        assert "files" in str(excinfo.value) and "rival" in str(excinfo.value)

    def test_implementation_may_take_fewer_arguments(self):
        """Hook implementations may leave out arguments, as pluggy allows."""
        seen = []

        @hookimpl
        def strongroom_register_workloads():
            seen.append(True)

        plugin = Named(strongroom_register_workloads=strongroom_register_workloads)
        PluginHost.create(extra_plugins=[("quiet", plugin)], load_entry_points=False)
        assert seen == [True]

    def test_entry_point_plugins_register_through_the_host(self, dists):
        """Installed plugins fill the registries and are listed with their distribution."""
        dists.add("strongroom-demo", "1.2.3", {"demo": WORKLOAD_PLUGIN})
        host = PluginHost.create()
        assert host.workloads.get("demo").__name__ == "DemoWorkload"
        assert info_of(host, "demo") == PluginInfo(
            name="demo",
            distribution="strongroom-demo",
            version="1.2.3",
            hooks=("strongroom_register_workloads",),
            registered=("workload:demo",),
            blocked=False,
        )

    def test_hook_relay_calls_plugins(self):
        """host.hook is the manager's hook relay."""
        host = PluginHost.create(load_entry_points=False)
        assert host.hook is host.pm.hook


def hello_plugin() -> Named:
    @hookimpl
    def strongroom_register_commands(cli):
        @cli.command()
        @click.argument("who")
        def hello(who):
            """Greet someone."""
            click.echo(f"hello {who}")

    return Named(strongroom_register_commands=strongroom_register_commands)


class TestRegisterCommands:
    def test_plugin_command_runs(self):
        """A command added by a plugin is part of the CLI and click can run it."""
        host = PluginHost.create(extra_plugins=[("hello", hello_plugin())], load_entry_points=False)
        cli = click.Group("strongroom")
        host.register_commands(cli)
        result = CliRunner().invoke(cli, ["hello", "world"])
        assert result.exit_code == 0, result.output
        assert result.output == "hello world\n"
        assert host.commands.owner("hello") == "hello"
        assert info_of(host, "hello").registered == ("command:hello",)

    def test_replacing_a_command_names_both(self):
        """A plugin adding a command that already exists is refused."""
        host = PluginHost.create(extra_plugins=[("hello", hello_plugin())], load_entry_points=False)
        cli = click.Group("strongroom")
        cli.add_command(click.Command("hello"))
        expected = r"Command 'hello' .*by strongroom and by hello"
        with pytest.raises(DuplicateRegistration, match=expected):
            host.register_commands(cli)

    def test_error_in_command_hook_names_plugin(self):
        """A plugin raising while adding commands is named."""

        @hookimpl
        def strongroom_register_commands(cli):
            raise ValueError("no")

        plugin = Named(strongroom_register_commands=strongroom_register_commands)
        host = PluginHost.create(extra_plugins=[("noisy", plugin)], load_entry_points=False)
        with pytest.raises(PluginLoadError, match="Plugin 'noisy' failed to load: ValueError: no"):
            host.register_commands(click.Group("strongroom"))


class TestDeferredBuiltInCommands:
    """The root group's built-in commands are loaded when asked for; plugins see them as
    commands all the same."""

    def test_a_plugin_replacing_a_deferred_built_in_is_refused(self):
        """``backup`` is not loaded when the plugins add theirs, and replacing it is still refused."""
        from strongroom.cli import build_cli

        @hookimpl
        def strongroom_register_commands(cli):
            cli.add_command(click.Command("backup"))

        plugin = Named(strongroom_register_commands=strongroom_register_commands)
        host = PluginHost.create(extra_plugins=[("rogue", plugin)], load_entry_points=False)
        with pytest.raises(DuplicateRegistration, match=r"Command 'backup' .*by strongroom and by rogue"):
            build_cli(host)

    def test_a_plugin_adds_a_subcommand_to_a_built_in_group(self):
        """A plugin that finds the built-in ``items`` group in ``cli.commands`` (loading
        it) and adds a subcommand to it is no replacement; the subcommand runs."""
        from strongroom.cli import build_cli

        @hookimpl
        def strongroom_register_commands(cli):
            @cli.commands["items"].command("count")
            def count():
                click.echo("counted")

        plugin = Named(strongroom_register_commands=strongroom_register_commands)
        cli = build_cli(PluginHost.create(extra_plugins=[("counter", plugin)], load_entry_points=False))
        result = CliRunner().invoke(cli, ["items", "count"])
        assert result.exit_code == 0, result.output
        assert result.output == "counted\n"

    def test_every_deferred_command_loads_under_its_name(self):
        """Each built-in name loads a command of that very name (click shows the table's name)."""
        from strongroom.cli import build_cli

        cli = build_cli(PluginHost.create(load_entry_points=False))
        deferred = sorted(cli.command_table())
        assert {"backup", "restore", "protect", "items", "run-due", "install-units", "export-config"} <= set(deferred)
        assert [(name, cli.commands[name].name) for name in deferred] == [(name, name) for name in deferred]

    def test_a_command_imports_only_its_own_modules(self, tmp_path):
        """``strongroom jobs`` imports the jobs command, not the modules of the others;
        ``--help`` lists every command (each loaded)."""
        code = textwrap.dedent("""
            import sys
            from strongroom.cli import main
            try:
                main(sys.argv[1:])
            except SystemExit:
                pass
            print(" ".join(sorted(m for m in sys.modules if m.startswith("strongroom.cli.") and m.endswith("_cmd"))))
        """)
        def commands_loaded(*args):
            done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                                  env={**os.environ, "STRONGROOM_VAULT": str(tmp_path / "v")})
            return set(done.stdout.split()), done
        loaded, done = commands_loaded("jobs")
        assert loaded == {"strongroom.cli.jobs_cmd"}, done.stderr
        loaded, done = commands_loaded("--help")
        assert {"strongroom.cli.vault_cmd", "strongroom.cli.backup_cmd", "strongroom.cli.restore_cmd",
                "strongroom.cli.protect_cmd", "strongroom.cli.man_cmd"} <= loaded, done.stderr
        assert "install-units" in done.stdout and "export-config" in done.stdout


class TestBackupWrapperSpec:
    """The core runs the backup as the innermost call of strongroom_backup_wrapper."""

    def make_host(self, log: list[str]) -> PluginHost:
        @hookimpl(wrapper=True)
        def strongroom_backup_wrapper(vault, item):
            log.append(f"freeze {item}")
            try:
                point = yield
                log.append(f"got {point}")
                return point
            finally:
                log.append(f"thaw {item}")

        plugin = Named(strongroom_backup_wrapper=strongroom_backup_wrapper)
        return PluginHost.create(extra_plugins=[("quiesce", plugin)], load_entry_points=False)

    def test_wrapper_receives_the_point(self):
        """The yield returns the new point, and the hook call returns it to the core."""
        log: list[str] = []
        host = self.make_host(log)

        def backup(vault, item):
            log.append("backup")
            return "point-1"

        hook = host.hook.strongroom_backup_wrapper
        point = hook.call_extra([backup], {"vault": None, "item": "db"})
        assert point == "point-1"
        assert log == ["freeze db", "backup", "got point-1", "thaw db"]

    def test_wrapper_sees_a_failed_backup(self):
        """When the backup raises, the wrapper's finally runs and the error reaches the core."""
        log: list[str] = []
        host = self.make_host(log)

        def backup(vault, item):
            raise OSError("disk gone")

        with pytest.raises(OSError, match="disk gone"):
            host.hook.strongroom_backup_wrapper.call_extra([backup], {"vault": None, "item": "db"})
        assert log == ["freeze db", "thaw db"]


def run_plugins_command(host: PluginHost, *args: str):
    @click.group()
    @click.pass_context
    def root(ctx):
        ctx.obj = types.SimpleNamespace(plugins=host)

    root.add_command(plugins_command)
    result = CliRunner().invoke(root, ["plugins", *args])
    assert result.exit_code == 0, result.output
    return result.output


class TestPluginsCommand:
    def make_host(self, dists) -> PluginHost:
        dists.add("strongroom-demo", "1.2.3", {"demo": WORKLOAD_PLUGIN, "off": WORKLOAD_PLUGIN})
        return PluginHost.create(disabled=["off"], extra_plugins=[("hello", hello_plugin())])

    def test_json(self, dists):
        """--json prints one object per plugin (each with the JSON schema), disabled ones included."""
        host = self.make_host(dists)
        host.register_commands(click.Group("strongroom"))
        assert json.loads(run_plugins_command(host, "--json")) == [
            {
                "schema": 1,
                "name": "demo",
                "version": "1.2.3",
                "distribution": "strongroom-demo",
                "disabled": False,
                "hooks": ["strongroom_register_workloads"],
                "registered": ["workload:demo"],
            },
            {
                "schema": 1,
                "name": "hello",
                "version": None,
                "distribution": None,
                "disabled": False,
                "hooks": ["strongroom_register_commands"],
                "registered": ["command:hello"],
            },
            {
                "schema": 1,
                "name": "off",
                "version": "1.2.3",
                "distribution": "strongroom-demo",
                "disabled": True,
                "hooks": [],
                "registered": [],
            },
        ]

    def test_table(self, dists):
        """Without --json a table shows each plugin on one line."""
        output = run_plugins_command(self.make_host(dists))
        assert [line.split() for line in output.splitlines()] == [
            ["NAME", "VERSION", "DISTRIBUTION", "STATUS", "REGISTERED", "HOOKS"],
            ["demo", "1.2.3", "strongroom-demo", "enabled", "workload:demo", "register_workloads"],
            ["hello", "-", "-", "enabled", "-", "register_commands"],
            ["off", "1.2.3", "strongroom-demo", "disabled", "-", "-"],
        ]

    def test_no_plugins(self):
        """An empty installation says so instead of printing an empty table."""
        host = PluginHost.create(load_entry_points=False)
        assert run_plugins_command(host) == "No plugins installed.\n"
        assert run_plugins_command(host, "--json") == "[]\n"


def test_a_workload_that_is_not_protectable_has_no_protect_command():
    """protect lists each workload but those with protectable = False (the postgres WAL archive)."""
    from strongroom.cli.protect_cmd import build_protect_group
    from strongroom.plugins import PluginHost

    host = PluginHost.create()
    commands = build_protect_group(host).commands
    assert "postgres" in commands and "files" in commands
    assert "postgres-wal" in host.workloads.names() and "postgres-wal" not in commands
