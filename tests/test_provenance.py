"""Results anyone can verify: provenance in every record, an import that admits only what can be
true (all or nothing), and ``verify``, which re-runs what only a re-run can check.

Real trials of the tiny test task in real MLflow stores (SQLite files); no mocks.
"""
import json
import multiprocessing
import shutil
from pathlib import Path

import pytest

from sparsebench.cli import main
from sparsebench.running import bundle, provenance, tracking, verify
from sparsebench.running.bundle_checks import conflicts
from sparsebench.running.sweep import execute, plan, trial_config

from conftest import TEST_PLUGINS


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with 6 completed trials (two seeds of three cells) and its exported bundle."""
    root = tmp_path_factory.mktemp("origin")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    context = {"uri": uri, "data_root": None, "parents": {}, "device": "cpu", "plugin_roots": [str(TEST_PLUGINS)]}
    for spec in plan(["tiny-mlp"], ["dense", "magnitude"], [0.5, 0.9], [0, 1]):
        execute(trial_config(spec, context))
    bundle.export_bundle(uri, root / "runs")
    return {"uri": uri, "bundle": root / "runs"}


def lines(folder):
    return [json.loads(line) for line in (folder / "tiny-mlp.jsonl").read_text().splitlines()]


def write(folder, records):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tiny-mlp.jsonl").write_text("".join(bundle.bundle_line(r) + "\n" for r in records))
    return folder


def magnitude(records):
    return next(r for r in records if r["params"]["method"] == "magnitude")


# --- provenance --------------------------------------------------------------------------------

def test_a_digest_ignores_comments_docstrings_and_layout_but_not_code(tmp_path):
    a, b, c = tmp_path / "a" / "m.py", tmp_path / "b" / "m.py", tmp_path / "c" / "m.py"
    for path in (a, b, c):
        path.parent.mkdir()
    a.write_text('"""Doc."""\ndef f(x):\n    return x + 1\n')
    b.write_text('"""Other doc."""\n\ndef f(x):  # a comment\n    """f."""\n    return (x\n            + 1)\n')
    c.write_text('"""Doc."""\ndef f(x):\n    return x + 2\n')
    assert provenance.source_digest([a]) == provenance.source_digest([b])
    assert provenance.source_digest([a]) != provenance.source_digest([c])


def test_every_record_names_its_code_and_a_changed_file_makes_it_stale(store):
    record = magnitude(lines(store["bundle"]))
    tags = record["tags"]
    now = provenance.digests("magnitude", "tiny-mlp")
    assert {tags[f"sb.code.{k}"] for k in provenance.KEYS} == set(now.values())
    assert tags["sb.commit"] and tags["sb.dirty"] in ("true", "false")
    assert provenance.staleness(tags) == ""
    assert provenance.staleness({**tags, provenance.REACHED: "0" * 16}) == "code changed since (harness)"
    assert provenance.staleness({**tags, "sb.code.method": "0" * 16}) == "code changed since (method)"
    legacy = {k: v for k, v in tags.items() if not k.startswith("sb.code.")}
    assert "before provenance" in provenance.staleness(legacy)


def test_a_harness_change_stales_only_the_runs_whose_trials_reach_it(store):
    tags = magnitude(lines(store["bundle"]))["tags"]
    reached = {provenance.relative(f) for f in provenance.trial_files("magnitude", "tiny-mlp")}
    assert {"running/trial.py", "core/masks.py", "core/train.py"} <= reached
    assert "library/dynamic.py" not in reached  # RigL's and SET's module: magnitude never imports it
    # another harness digest (a file changed elsewhere), the same files reached: current
    assert provenance.staleness({**tags, "sb.code.harness": "0" * 16}) == ""


def test_runs_recorded_before_reach_are_judged_by_the_files_of_their_harness_digest(store, tmp_path, monkeypatch):
    tags = {k: v for k, v in magnitude(lines(store["bundle"]))["tags"].items() if k != provenance.REACHED}
    files = {provenance.relative(f): provenance.file_digest(f) for f in provenance.harness_files()}

    def entry(**changed):
        named = {**files, **changed}
        order = sorted(named, key=lambda f: Path(f).parts)
        return provenance.combine([(Path(f).name, named[f]) for f in order]), named

    unreached, unreached_files = entry(**{"library/dynamic.py": "1" * 64})
    reached, reached_files = entry(**{"core/masks.py": "2" * 64})
    forged = entry(**{"library/dynamic.py": "3" * 64})[0]
    history = tmp_path / "harness_history.json"
    history.write_text(json.dumps({unreached: unreached_files, reached: reached_files, forged: files}))
    monkeypatch.setattr(provenance, "HISTORY", history)
    provenance.history.cache_clear()
    try:
        assert provenance.staleness({**tags, "sb.code.harness": unreached}) == ""
        assert provenance.staleness({**tags, "sb.code.harness": reached}) == "code changed since (harness)"
        # an entry whose files do not give its digest is not believed
        assert provenance.staleness({**tags, "sb.code.harness": forged}) == "code changed since (harness)"
        assert provenance.staleness({**tags, "sb.code.harness": "4" * 16}) == "code changed since (harness)"
    finally:
        provenance.history.cache_clear()


def test_a_process_records_the_code_it_loaded_even_after_its_file_changed(store, tmp_path):
    import os

    from sparsebench.core import registry
    plugin = tmp_path / "recorded_probe.py"
    plugin.write_text("from dataclasses import dataclass\nfrom sparsebench import register_method\n"
                      "from sparsebench.core import registry\nMagnitude = registry.METHODS.get('magnitude')[0]\n\n\n"
                      "@register_method('recorded-probe')\n@dataclass\nclass Probe(Magnitude):\n    version = '1'\n")
    registry.load_file(registry.METHODS, plugin)
    try:
        first = provenance.tags("recorded-probe", "tiny-mlp", "quick")
        plugin.write_text(plugin.read_text() + "\nCHANGED = 1\n")  # edited on disk while this process runs
        os.utime(plugin, ns=(plugin.stat().st_atime_ns, plugin.stat().st_mtime_ns + 10**9))
        assert provenance.tags("recorded-probe", "tiny-mlp", "quick") == first  # a reused worker: what it loaded
        assert provenance.digests("recorded-probe", "tiny-mlp")["method"] != first["sb.code.method"]  # on disk now
        assert provenance.staleness({**first, "sb.method": "recorded-probe", "sb.task": "tiny-mlp",
                                     "sb.profile": "quick"}) == "code changed since (method)"
    finally:
        registry.METHODS.entries.pop("recorded-probe", None)


def test_a_profile_digest_leaves_the_other_profiles_out():
    import ast
    base = 'class T:\n    profiles = {"quick": R(lr=1), "full": R(lr=2), **BASE}\n'
    digest = lambda source, profile="quick": provenance.canonical(provenance.only_profile(ast.parse(source), profile))
    assert digest(base) == digest(base.replace('"full": R(lr=2)', '"full": R(lr=3), "new": R()'))
    assert digest(base) != digest(base.replace("R(lr=1)", "R(lr=5)"))  # its own recipe
    assert digest(base) != digest(base.replace("**BASE", "**OTHER"))  # what every profile may read
    assert digest(base) != digest(base.replace("class T:", "K = 1\nclass T:"))  # the rest of the file


def test_runs_of_a_profile_stay_current_when_another_profile_of_their_task_changes(store, tmp_path, monkeypatch):
    import base64
    import zlib
    tags = {k: v for k, v in magnitude(lines(store["bundle"]))["tags"].items() if k != provenance.PROFILE}
    assert tags["sb.profile"] == "quick"
    path = provenance.plugin_files(provenance.registry.TASKS.get("tiny-mlp")[0])[0]
    source = path.read_text()

    def entry(text):  # a task_history.json entry for the task file as it was when ``text``
        name = path.name
        digest = provenance.combine([(name, provenance._source_digest(text))])
        return digest, [[name, base64.b64encode(zlib.compress(text.encode())).decode()]]

    other, other_files = entry(source.replace('"adam": Recipe(batch_size=32,', '"adam": Recipe(batch_size=16,'))
    own, own_files = entry(source.replace('"quick": Recipe(batch_size=32,', '"quick": Recipe(batch_size=16,'))
    assert other != tags["sb.code.task"] != own
    history = tmp_path / "task_history.json"
    history.write_text(json.dumps({other: other_files, own: own_files, "0" * 16: other_files}))
    monkeypatch.setattr(provenance, "TASK_HISTORY", history)
    provenance.task_history.cache_clear()
    try:
        assert provenance.staleness({**tags, "sb.code.task": other}) == ""  # another recipe changed since
        assert provenance.staleness({**tags, "sb.code.task": own}) == "code changed since (task)"
        # an entry whose sources do not give its digest is not believed
        assert provenance.staleness({**tags, "sb.code.task": "0" * 16}) == "code changed since (task)"
    finally:
        provenance.task_history.cache_clear()
    recorded = magnitude(lines(store["bundle"]))["tags"]  # new runs carry their profile's digest
    assert recorded[provenance.PROFILE] == provenance.profile_digest("tiny-mlp", "quick")
    assert provenance.staleness({**recorded, "sb.code.task": "1" * 16}) == ""
    assert provenance.staleness({**recorded, provenance.PROFILE: "1" * 16}) == "code changed since (task)"


def test_the_committed_task_history_holds_true_entries_only():
    entries = json.loads(provenance.TASK_HISTORY.read_text())
    assert entries and set(provenance.task_history()) == set(entries)


def test_the_committed_harness_history_holds_true_entries_only():
    entries = json.loads(provenance.HISTORY.read_text())
    assert entries and set(provenance.history()) == set(entries)


def test_a_plugin_that_loads_a_sibling_file_reaches_it():
    assert "wanda.py" in {f.name for f in provenance.trial_files("dsnot", "tiny-mlp")}
    assert "wanda.py" not in {f.name for f in provenance.trial_files("magnitude", "tiny-mlp")}


def test_export_current_keeps_only_runs_of_this_code(store, tmp_path):
    records = lines(store["bundle"])
    old = {**magnitude(records), "run_id": "0" * 32}
    old["tags"] = {**old["tags"], "sb.code.method": "f" * 16}
    shutil.copytree(store["bundle"], tmp_path / "runs")
    write(tmp_path / "runs", [r for r in records if r["run_id"] != magnitude(records)["run_id"]] + [old])
    bundle.export_bundle(store["uri"], tmp_path / "runs", current=True)
    kept = {r["run_id"] for r in lines(tmp_path / "runs")}
    assert old["run_id"] not in kept and magnitude(records)["run_id"] in kept


def test_export_drop_superseded_leaves_out_a_stale_run_that_a_run_of_this_code_replaces(store, tmp_path):
    records = lines(store["bundle"])
    replaced = {**magnitude(records), "run_id": "5" * 32}  # the same config id, run earlier by other code
    replaced["tags"] = {**replaced["tags"], "sb.code.method": "f" * 16}
    folder = write(tmp_path / "runs", records + [replaced])
    bundle.export_bundle(store["uri"], folder, drop_superseded=True)
    kept = {r["run_id"] for r in lines(folder)}
    assert replaced["run_id"] not in kept and magnitude(records)["run_id"] in kept
    assert {r["run_id"] for r in records} <= kept


def test_rerun_stale_runs_again_the_trials_whose_runs_other_code_made(store, tmp_path):
    from sparsebench.running import standalone, sweep
    records = lines(store["bundle"])
    stale = json.loads(json.dumps(magnitude(records)))
    stale["tags"]["sb.code.method"] = "f" * 16
    folder = write(tmp_path / "runs", [r for r in records if r["run_id"] != stale["run_id"]] + [stale])
    specs = plan(["tiny-mlp"], ["dense", "magnitude"], [0.5, 0.9], [0, 1])
    spec = next(s for s in specs if s.config_id() == stale["tags"]["sb.config_id"])
    assert standalone.pending(specs, folder) == []
    assert standalone.pending(specs, folder, rerun_stale=True) == [spec]
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    bundle.import_bundle(folder, fresh)
    assert sweep.pending(specs, fresh)[0] == []
    assert sweep.pending(specs, fresh, rerun_stale=True)[0] == [spec]


def test_a_stale_finished_run_holds_its_trial_only_without_rerun_stale(tmp_path):
    from mlflow.tracking import MlflowClient
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    context = {"uri": uri, "data_root": None, "parents": {}, "device": "cpu", "plugin_roots": [str(TEST_PLUGINS)]}
    spec = plan(["tiny-mlp"], ["magnitude"], [0.5], [0])[0]
    first = execute(trial_config(spec, context))
    assert first["status"] == "completed"
    MlflowClient(uri).set_tag(first["run_id"], "sb.code.method", "f" * 16)  # made by other code
    assert execute(trial_config(spec, context))["status"] == "elsewhere"  # a finished run holds it
    again = execute(trial_config(spec, {**context, "rerun_stale": True}))
    assert again["status"] == "completed" and again["run_id"] != first["run_id"]


def test_export_of_one_method_keeps_its_runs_and_the_dense_references(store, tmp_path):
    bundle.export_bundle(store["uri"], tmp_path / "mine", methods=["magnitude"])
    assert {r["params"]["method"] for r in lines(tmp_path / "mine")} == {"magnitude", "dense"}


# --- import: all or nothing, what cannot be true refused ----------------------------------------

def tampered(records, change):
    out = [json.loads(json.dumps(r)) for r in records]
    change(magnitude(out))
    return out


@pytest.mark.parametrize("change, message", [
    (lambda r: r["metrics"].update({"final/test_accuracy": 250.0}), r"outside \[0.0, 100.0\]"),
    (lambda r: r["metrics"].update({"final/sparsity": 1.7}), r"outside \[0.0, 1.0\]"),
    (lambda r: r["metrics"].update({"final/sparsity": 0.99}), "its layers count"),
    (lambda r: r["metrics"].update({"final/test_accuracy": "99.5"}), "not a finite number"),
    (lambda r: r["metrics"].update({"cost/train_flops": float("nan")}), "not a finite number"),
    (lambda r: r["history"]["val/accuracy"].append([99, "x"]), "not a finite number"),
    (lambda r: r["params"].update({"seed": "7"}), "different seeds"),
])
def test_an_impossible_record_is_refused_and_the_store_is_unchanged(store, tmp_path, change, message):
    bad = write(tmp_path / "bad", tampered(lines(store["bundle"]), change))
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    with pytest.raises(bundle.BundleError, match=message):
        bundle.import_bundle(bad, fresh)
    assert tracking.trial_runs(fresh) == []


def test_a_second_run_of_one_config_with_other_results_is_a_conflict_not_a_seed(store, tmp_path):
    records = lines(store["bundle"])
    copy = json.loads(json.dumps(magnitude(records)))
    copy["run_id"], copy["metrics"]["final/test_accuracy"] = "1" * 32, 99.5
    assert conflicts(records + [copy])
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    with pytest.raises(bundle.BundleError, match="conflicting"):
        bundle.import_bundle(write(tmp_path / "dup", records + [copy]), fresh)
    assert tracking.trial_runs(fresh) == []
    # nor against what the store already holds
    bundle.import_bundle(store["bundle"], fresh)
    with pytest.raises(bundle.BundleError, match="conflicting"):
        bundle.import_bundle(write(tmp_path / "late", [copy]), fresh)
    assert len(tracking.trial_runs(fresh)) == len(records)
    # the same config by other code supersedes, it does not conflict
    newer = {**copy, "tags": {**copy["tags"], "sb.code.harness": "e" * 16}}
    assert not conflicts(records + [newer])


def test_a_write_that_fails_part_way_takes_back_what_it_wrote(store, tmp_path, monkeypatch):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    real, calls = tracking.import_record, []

    def failing(uri, record):  # the third write fails, as a full disk or a lost server would
        calls.append(record["run_id"])
        if len(calls) == 3:
            raise OSError("No space left on device")
        return real(uri, record)
    monkeypatch.setattr(tracking, "import_record", failing)
    with pytest.raises(OSError):
        bundle.import_bundle(store["bundle"], fresh)
    assert tracking.trial_runs(fresh) == []


def _import(source, uri, plugins):
    from sparsebench.core import registry
    registry.discover([plugins])
    bundle.import_bundle(source, uri)


def test_two_imports_at_once_write_each_run_once(store, tmp_path):
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    tracking.open_store(fresh)
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=_import, args=(str(store["bundle"]), fresh, str(TEST_PLUGINS))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    ids = [tracking.origin_id(r) for r in tracking.trial_runs(fresh)]
    assert len(ids) == len(set(ids)) == len(lines(store["bundle"]))


def test_strict_import_names_an_unknown_method_and_suggests_its_folder(store, tmp_path):
    records = tampered(lines(store["bundle"]), lambda r: None)
    other = magnitude(records)
    spec = {**json.loads(other["tags"]["sb.spec"]), "method": "mine"}
    other["tags"]["sb.spec"] = json.dumps(spec, sort_keys=True)
    other["params"]["method"] = other["tags"]["sb.method"] = "mine"
    from sparsebench.running.trial import config_hash
    other["tags"]["sb.config_id"] = config_hash(spec, other["tags"]["sb.method_version"], other["tags"]["sb.task_version"])
    with pytest.raises(bundle.BundleError, match=r"\(mine on tiny-mlp\).*--plugins DIR"):
        bundle.import_bundle(write(tmp_path / "sub", records), f"sqlite:///{tmp_path / 'f.db'}", strict=True)


# --- verify: what only a re-run can tell ---------------------------------------------------------

def test_verify_reruns_a_sample_and_catches_a_changed_result(store, tmp_path, capsys):
    records = lines(store["bundle"])
    for r in records:  # the record names this machine's processor: equality to the bit is required
        r["tags"]["sb.cpu"] = verify.cpu_name()
    honest = write(tmp_path / "honest", records)
    plugins = ["--plugins", str(TEST_PLUGINS)]
    assert main(["verify", str(honest), "--method", "magnitude", "--sample", "2", *plugins]) == 0
    out = capsys.readouterr().out
    assert out.count(": equal") == 2 and "2 equal" in out
    forged = write(tmp_path / "forged", tampered(records, lambda r: r["metrics"].update(
        {"final/test_accuracy": r["metrics"]["final/test_accuracy"] - 0.01})))
    assert main(["verify", str(forged), "--all", "--method", "magnitude", "--seed", "0", *plugins]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_verify_stale_keep_reruns_the_stale_runs_into_a_bundle_that_replaces_them(store, tmp_path, capsys):
    records = lines(store["bundle"])
    for r in records:
        r["tags"]["sb.cpu"] = verify.cpu_name()
    old = magnitude(records)
    old["tags"]["sb.code.method"] = "f" * 16  # made by other code
    folder, keep = write(tmp_path / "runs", records), tmp_path / "kept"
    plugins = ["--plugins", str(TEST_PLUGINS)]
    assert main(["verify", str(folder), "--all", "--stale", "--keep", str(keep), *plugins]) == 0
    assert "re-running 1 of" in capsys.readouterr().out
    kept = lines(keep)
    assert [r["tags"]["sb.config_id"] for r in kept] == [old["tags"]["sb.config_id"]]
    assert kept[0]["run_id"] != old["run_id"] and provenance.staleness(kept[0]["tags"]) == ""
    assert "checkpoints/hits" not in kept[0]["metrics"]  # from scratch, without the checkpoint cache
    assert main(["verify", str(folder), "--all", "--stale", "--keep", str(keep), *plugins]) == 0
    assert len(lines(keep)) == 1  # a second call resumes: nothing re-run twice
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    bundle.import_bundle(folder, fresh)
    bundle.import_bundle(keep, fresh)
    bundle.export_bundle(fresh, folder, drop_superseded=True)
    assert old["run_id"] not in {r["run_id"] for r in lines(folder)}  # the re-run replaced it


def test_on_another_processor_a_difference_is_judged_by_the_seeds_spread(store):
    records = lines(store["bundle"])
    record = magnitude(records)
    assert "final/test_accuracy" in verify.spreads(records)[verify.cell_key(record)]  # two seeds: a spread
    spread = {"final/test_accuracy": 0.5}  # tolerance 2 x 0.5
    moved = json.loads(json.dumps(record))
    moved["tags"]["sb.cpu"] = "another processor"
    for delta, verdict in ((0.0, "equal"), (-0.8, "within noise"), (-2.0, "MISMATCH")):
        rerun = json.loads(json.dumps(record))
        rerun["metrics"]["final/test_accuracy"] += delta
        assert verify.compare(moved, rerun, "this processor", spread).verdict == verdict
    assert verify.compare(moved, rerun, "this processor", {}).verdict == "unverifiable"
    assert verify.compare(moved, rerun, "another processor", spread).verdict == "MISMATCH"  # the same: to the bit


def test_the_board_marks_runs_of_other_code_stale_and_prefers_this_codes_run(store, tmp_path):
    from sparsebench.report import tables

    records = lines(store["bundle"])
    older = json.loads(json.dumps(magnitude(records)))  # the same cell, run earlier by other code, another result
    older["run_id"], older["start_time"] = "2" * 32, older["start_time"] - 10_000
    older["tags"]["sb.code.harness"] = older["tags"]["sb.code.reached"] = "e" * 16
    older["metrics"]["final/test_accuracy"] -= 1.0
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    bundle.import_bundle(write(tmp_path / "both", records + [older]), fresh)
    table = tables.trial_table(fresh).set_index("run_id")
    assert older["run_id"] not in table.index and not table["stale"].any()  # this code's run shown, unmarked
    alone = f"sqlite:///{tmp_path / 'alone.db'}"
    bundle.import_bundle(write(tmp_path / "old", [r for r in records if r["run_id"] != magnitude(records)["run_id"]]
                               + [older]), alone)
    table = tables.trial_table(alone).set_index("run_id")
    assert table.loc[older["run_id"], "stale"] and table["stale"].sum() == 1  # shown, marked stale
