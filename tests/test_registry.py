"""Plugins from other packages are discovered through Python entry points."""
import sys

from sparsebench.core import registry
from sparsebench.running.trial import TrialSpec, run_trial


def test_entry_point_plugin_is_discovered_and_runs(tmp_path, monkeypatch):
    (tmp_path / "third_party_method.py").write_text(
        "from dataclasses import dataclass\n"
        "from sparsebench import Method\n\n"
        "@dataclass\n"
        "class ThirdParty(Method):\n"
        "    '''A plugin shipped by another package.'''\n"
        "    when, criterion, paper = 'init', 'random', '-'\n\n"
        "    def run(self, ctx):\n"
        "        ctx.train(steps=3)\n")
    dist = tmp_path / "third_party-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: third-party\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[sparsebench.methods]\nthird-party = third_party_method:ThirdParty\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry.discover()
        cls, _ = registry.METHODS.get("third-party")
        assert cls.__name__ == "ThirdParty"
        assert run_trial(TrialSpec("tiny-mlp", "third-party", 0.0))["status"] == "completed"
    finally:
        registry.METHODS.entries.pop("third-party", None)
        sys.modules.pop("third_party_method", None)
