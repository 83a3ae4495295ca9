"""The plugin catalog: ``--help``, ``list`` and argument errors without torch, and never stale."""
import json
import os
import subprocess
import sys
import textwrap

from sparsebench.core import catalog

PLUGIN = '''
import dataclasses
from sparsebench import Method, register_method

@register_method("catalogued")
@dataclasses.dataclass
class Catalogued(Method):
    when = "init"
    criterion = "random"
    paper = "none"
    bounds = {{"alpha": "(0, 1]"}}
    alpha: float = {alpha}

    def run(self, ctx):
        pass
'''


def no_torch(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the command line in a fresh interpreter that fails if the command imported torch."""
    code = textwrap.dedent(f"""
        import sys
        from sparsebench import cli
        try:
            code = cli.main({list(argv)!r})
        except SystemExit as exit:
            code = exit.code
        assert "torch" not in sys.modules and "mlflow" not in sys.modules and "ray" not in sys.modules, "imported"
        sys.exit(code)""")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **(env or {})})


def test_help_list_and_argument_errors_import_neither_torch_nor_mlflow_nor_ray(tmp_path):
    catalog.load()  # built (importing the plugins) at most once per code state
    assert no_torch("--help").returncode == 0
    listed = no_torch("list")
    assert listed.returncode == 0 and "rigl" in listed.stdout and "profiles: full, quick" in listed.stdout, listed.stderr
    for argv, message in [
        (["--task", "lenet300-mnsit", "--method", "rigl", "--sparsity", "0.9"], "did you mean 'lenet300-mnist'"),
        (["--task", "lenet300-mnist", "--method", "rigl", "--sparsity", "0.9", "--set", "delta_t=abc"],
         "delta_t must be an integer"),
        (["--task", "lenet300-mnist", "--method", "rigl", "--sparsity", "1.5"], "sparsity must be in [0, 1)"),
        (["--task", "lenet300-mnist", "--method", "rigl", "--sparsity", "0.9", "--profile", "huge"],
         "has no profile 'huge'"),
        (["--suite", "default", "--tune", "0"], "--tune takes a budget"),
    ]:
        result = no_torch("run", *argv, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}")
        assert result.returncode == 2 and message in result.stderr, (argv, result.stderr)
    assert not (tmp_path / "mlflow.db").exists()


def test_a_changed_plugin_is_catalogued_again(tmp_path):
    (tmp_path / "methods").mkdir()
    plugin = tmp_path / "methods" / "catalogued.py"
    plugin.write_text(PLUGIN.format(alpha=0.5))
    assert catalog.load([str(tmp_path)]).method("catalogued")["hparams"] == {"alpha": "0.5"}
    plugin.write_text(PLUGIN.format(alpha=0.25))  # same size, other content
    listed = subprocess.run([sys.executable, "-m", "sparsebench.cli", "list", "--plugins", str(tmp_path)],
                            capture_output=True, text=True)
    assert "hyperparameters: alpha=0.25" in listed.stdout, listed.stderr
    assert catalog.load([str(tmp_path)]).method("catalogued")["schema"]["alpha"] == {"kinds": ["float"],
                                                                                      "bounds": "(0, 1]"}


def test_a_corrupt_catalog_is_built_again():
    listed = catalog.load()
    path = catalog.cache_dir("catalog") / f"{catalog.key(catalog.registry.plugin_roots())}.json"
    path.write_text("{not json")
    assert catalog.load().methods == listed.methods
    assert catalog.Catalog(json.loads(path.read_text())).methods == listed.methods  # and written again


def test_discovering_the_plugins_imports_neither_torchvision_nor_mlflow_nor_ray():
    """Every trial's worker discovers the plugins: torchvision (seconds) loads with data, not here."""
    code = ("import sys; from sparsebench.core import registry; registry.discover(); "
            "print(sorted(m for m in ('torchvision', 'mlflow', 'ray') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr
