"""Command line: ``sparsebench run | leaderboard | export | import | verify | compare | check | list``."""
from __future__ import annotations

import argparse
import errno
import os
import shlex
import sys

from sparsebench.core import registry
from sparsebench.errors import SparsebenchError
from sparsebench.running.suites import SUITES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sparsebench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a grid of trials through Ray Tune, recorded in MLflow")
    run.add_argument("--suite", choices=sorted(SUITES), help="a named grid (sparsebench/suites.py); --task, --method, --sparsity and --seed keep part of it, --profile replaces its profile")
    run.add_argument("--task", nargs="+", help="task names")
    run.add_argument("--method", nargs="+", help="method names")
    run.add_argument("--sparsity", nargs="+", type=float, help="target sparsities in [0, 1)")
    run.add_argument("--seed", nargs="+", type=int, help="seeds (default: 0; with --suite, the suite's)")
    run.add_argument("--profile", help="task profile: quick, full, ... as `sparsebench list` shows (default: quick; "
                                       "with --suite, each block's)")
    run.add_argument("--set", nargs="*", default=[], metavar="HPARAM=VALUE", help="method hyperparameter overrides")
    run.add_argument("--data-root", help="folder with the datasets (default: $SPARSEBENCH_DATA_ROOT)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    run.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS or a local Ray)")
    run.add_argument("--device", default="cpu", help="torch device of each trial (cpu, cuda)")
    run.add_argument("--plugins", nargs="*", default=[], help="extra plugin roots holding methods/ and tasks/")
    run.add_argument("--retry-failed", action="store_true", help="run failed trials again")
    run.add_argument("--rerun-stale", action="store_true",
                     help="run again the trials whose runs were made by other code than this checkout's "
                          "(the board's stale cells)")
    run.add_argument("--trial-timeout", type=float, metavar="SECONDS",
                     help="wall-clock limit of each trial, past which it is ended and recorded as failed (kind "
                          "timeout); default: each task profile's budget (`Task.trial_budget`)")
    run.add_argument("--no-checkpoints", action="store_true",
                     help="train everything in its trial instead of reusing trainings from the checkpoint store")
    run.add_argument("--plan", action="store_true",
                     help="print what this run would do and exit: per task, profile and method the trials done, "
                          "stale and to run, and their core time estimated from measured runs")
    run.add_argument("--bundle", metavar="DIR",
                     help="without Ray or MLflow: run the trials in plain processes and append each result to the "
                          "runs bundle DIR (skipping what it holds); load it with `sparsebench import DIR`")
    run.add_argument("--workers", type=int, default=1, help="with --bundle: trials at once (default: 1)")
    run.add_argument("--threads", type=int, default=1, help="with --bundle: torch threads per trial (default: 1)")
    run.add_argument("--tune", type=int, metavar="N",
                     help="the tuned track: search N configurations per method and sparsity on validation "
                          "(the method's search space), then run the best on the seeds (a suite's blocks may set it)")

    board = sub.add_parser("leaderboard", help="regenerate leaderboard/ from the MLflow runs")
    board.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    board.add_argument("--out", default="leaderboard", help="folder written (default: leaderboard)")

    export = sub.add_parser("export", help="write the store's finished trial runs into a runs bundle (JSON lines)")
    export.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    export.add_argument("--out", default="leaderboard/runs", help="bundle folder (default: leaderboard/runs)")
    export.add_argument("--current", action="store_true",
                        help="keep only runs of this checkout's plugin versions, dropping superseded ones from the "
                             "bundle (the committed bundle holds what the board shows)")

    export.add_argument("--drop-superseded", action="store_true",
                        help="keep only runs of this checkout's plugin versions, whatever code made them (what the "
                             "board shows, stale or not; `make publish`)")
    export.add_argument("--method", nargs="+", help="only these methods' runs (and their tasks' dense references): "
                                                    "a method author's submission")
    export.add_argument("--task", nargs="+", help="only these tasks' runs")

    verify = sub.add_parser("verify", help="re-run a seeded random sample of a bundle's runs on this machine and "
                                           "compare every result with its record; exits 1 on any mismatch")
    verify.add_argument("bundle", nargs="*", default=["leaderboard/runs"], help="bundle folders or .jsonl files "
                                                                               "(default: leaderboard/runs)")
    how_many = verify.add_mutually_exclusive_group()
    how_many.add_argument("--sample", type=int, default=5, metavar="N", help="runs re-run (default: 5)")
    how_many.add_argument("--all", action="store_true", help="re-run every matching run")
    verify.add_argument("--task", nargs="+", help="only runs of these tasks")
    verify.add_argument("--method", nargs="+", help="only runs of these methods")
    verify.add_argument("--seed", nargs="+", type=int, help="only runs of these seeds")
    verify.add_argument("--profile", nargs="+", help="only runs of these task profiles")
    verify.add_argument("--stale", action="store_true", help="only runs made by other code than this checkout's")
    verify.add_argument("--keep", metavar="DIR", help="keep the re-runs as a runs bundle in DIR (import it to "
                        "replace stale runs; run again to resume)")
    verify.add_argument("--draw", type=int, default=0, help="seed of the random sample (default: 0)")
    verify.add_argument("--workers", type=int, default=1, help="trials re-run at once (default: 1)")
    verify.add_argument("--data-root", help="folder with the datasets (default: $SPARSEBENCH_DATA_ROOT)")
    verify.add_argument("--plugins", nargs="*", default=[], help="extra plugin roots holding methods/ and tasks/")

    compare = sub.add_parser("compare", help="set the results of a store (e.g. make bench's) beside a bundle's: "
                                             "equal, within noise, or outside it")
    compare.add_argument("bundle", nargs="?", default="leaderboard/runs", help="the bundle compared with")
    compare.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")

    load = sub.add_parser("import", help="load a runs bundle into the store, skipping runs already there")
    load.add_argument("bundle", nargs="?", default="leaderboard/runs", help="bundle folder or .jsonl file")
    load.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or ./mlflow.db)")
    load.add_argument("--strict", action="store_true",
                      help="reject runs of unknown plugins or other plugin versions (for submitted bundles)")
    load.add_argument("--plugins", nargs="*", default=[], help="extra plugin roots holding methods/ and tasks/")

    check = sub.add_parser("check", help="run the method contract on the methods of one plugin file (tiny MLP and "
                                         "convnet, a few seconds a method)")
    check.add_argument("file", help="a method plugin file, e.g. my_method.py")

    listing = sub.add_parser("list", help="list the discovered methods and tasks, and broken plugins")
    listing.add_argument("--plugins", nargs="*", default=[], help="extra plugin roots holding methods/ and tasks/")

    args = parser.parse_args(argv)
    try:
        return {"run": lambda a: _run(a, argv), "leaderboard": _leaderboard, "list": _list, "export": _export,
                "import": _import, "check": _check, "verify": _verify,
                "compare": _compare}[args.command](args)
    except (SparsebenchError, ValueError) as exc:
        print(f"sparsebench: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # its reader stopped reading (`... --plan | head -1`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so that exiting does not flush into it
        return 141
    except OSError as exc:  # a read-only or full disk met past the checks at the start: still one line
        if exc.errno not in (errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EDQUOT):
            raise
        print(f"sparsebench: error: cannot write {exc.filename or 'a file'}: {exc.strerror}", file=sys.stderr)
        return 2


def _run(args, argv: list[str] | None = None) -> int:
    from sparsebench.core import catalog

    blocks = _blocks(args, catalog.load(args.plugins))  # bad names and values are told before torch loads
    if args.bundle and (args.tune or args.address or args.tracking_uri or args.trial_timeout
                        or any(b.get("tune") for b in blocks)):
        raise ValueError("--bundle runs plain processes without Ray or MLflow: it takes no --tune, --address, "
                         "--tracking-uri or --trial-timeout")
    registry.discover(args.plugins)
    specs, studies = _specs(args, blocks)
    if args.plan:
        return _plan(args, specs, studies)
    if args.bundle:
        return _run_bundle(args, specs)
    from sparsebench.running.sweep import run_sweep
    from sparsebench.running.tuning import run_tuning

    options = dict(data_root=args.data_root, uri=args.tracking_uri, address=args.address,
                   retry_failed=args.retry_failed, device=args.device, plugin_roots=args.plugins,
                   checkpoints=not args.no_checkpoints, trial_timeout=args.trial_timeout,
                   rerun_stale=args.rerun_stale)
    name = args.suite or "sweep"
    summaries = {}
    if specs:
        summaries["trials"] = run_sweep(specs, name=name, **options)
    if studies:
        summaries["search"], summaries["tuned"] = run_tuning(studies, name=name, **options)
    for what, summary in summaries.items():
        print(f"sparsebench: {what}: {summary or 'not started (the search was interrupted; run again to resume)'}")
    if any(s is None or s.interrupted > 0 for s in summaries.values()):
        print(f"sparsebench: interrupted; to resume, run again: sparsebench {shlex.join(argv or sys.argv[1:])}")
        return 130
    if any(s.elsewhere for s in summaries.values()):
        print("sparsebench: trials were left to another sweep (above: which, and when its claim expires); once it "
              f"ends or expires, run again to check that each has its result: sparsebench {shlex.join(argv or sys.argv[1:])}")
    ran = [s for s in summaries.values() if s.completed + s.failed]
    if ran and not any(s.completed for s in ran):
        print("sparsebench: every trial that ran failed (their reasons are above and in the store)", file=sys.stderr)
        return 1
    return 0


def _run_bundle(args, specs: list) -> int:
    from sparsebench.running.standalone import run_bundle

    try:
        counts = run_bundle(specs, args.bundle, args.workers, args.data_root, args.device, args.threads, args.plugins,
                            checkpoints=not args.no_checkpoints, rerun_stale=args.rerun_stale)
    except KeyboardInterrupt:
        print(f"sparsebench: interrupted; the trials that finished are in {args.bundle}, the running ones are not: "
              "run again to resume")
        return 130
    print(f"sparsebench: {len(specs)} trials planned, {counts['skipped']} already in {args.bundle} and skipped, "
          f"{counts['completed']} completed, {counts['failed']} failed; load them with: "
          f"sparsebench import {shlex.quote(args.bundle)}")
    return 0


def _plan(args, specs: list, studies: list) -> int:
    """``run --plan``: what the run would do (:mod:`sparsebench.running.plan`); reads, runs nothing."""
    from sparsebench.running import plan

    target = (plan.bundle_target(specs, args.bundle) if args.bundle
              else plan.store_target(specs, args.tracking_uri, args.retry_failed))
    print(plan.plan_text(specs, target, args.rerun_stale, args.workers if args.bundle else 1))
    if studies:
        print(f"sparsebench: and {len(studies)} tuning studies of the tuned track (searches: not estimated)")
    return 0


def _blocks(args, listed) -> list[dict]:
    """The grids asked for: a suite's blocks, kept to the tasks, methods, sparsities and seeds given
    (and run under ``--profile`` if given); or the grid of those options alone. Checked against the
    plugin catalog ``listed``."""
    chosen = {"tasks": args.task, "methods": args.method, "sparsities": args.sparsity, "seeds": args.seed}
    if args.suite:
        blocks = [{**block, **{k: [v for v in block[k] if v in given] for k, given in chosen.items() if given},
                   "profile": args.profile or block["profile"]} for block in SUITES[args.suite]]
    else:
        prunes = any(listed.method(m)["prunes"] for m in args.method or [])
        missing = [k for k in ("tasks", "methods", "sparsities") if not chosen[k] and (k != "sparsities" or prunes)]
        if missing:
            raise ValueError(f"give --suite or all of --task, --method and --sparsity (missing: {', '.join(missing)})")
        blocks = [{"tasks": args.task, "methods": args.method, "sparsities": args.sparsity or [],
                   "seeds": args.seed or [0], "profile": args.profile or "quick"}]
        if prunes and "dense" not in args.method:  # not added: it would be a training nobody asked for
            print("sparsebench: note: this grid has no dense reference; its leaderboard sections show one only "
                  "if a dense run of the same task, profile and seeds is in the store (add --method dense: "
                  "it runs once per task and seed)", file=sys.stderr)
    if args.tune is not None and args.tune < 1:
        raise ValueError(f"--tune takes a budget of at least 1 configuration, got {args.tune}")
    overrides = _overrides(args.set)
    for block in blocks:
        listed.check(block["tasks"], [block["profile"]], block["methods"], block["sparsities"],
                     {**block.get("set", {}), **overrides})
    return blocks


def _specs(args, blocks: list[dict]) -> tuple[list, list]:
    """The trials of ``blocks``. Blocks with a tuning budget (``tune``, or ``--tune``) become
    studies of the tuned track; their dense reference runs on the default track."""
    from sparsebench.running.trial import plan

    overrides = _overrides(args.set)
    specs, studies = [], []
    for block in blocks:
        methods, budget = block["methods"], args.tune or block.get("tune")
        hparams = {**block.get("set", {}), **overrides}  # a block's own hyperparameters, then --set's
        if budget:
            from sparsebench.running.tuning import plan_studies  # Ray Tune's search spaces

            studies += plan_studies(block["tasks"], methods, block["sparsities"], block["seeds"], block["profile"],
                                    budget, hparams)
            methods = [m for m in methods if not registry.METHODS.get(m)[0].prunes]
        specs += plan(block["tasks"], methods, block["sparsities"], block["seeds"], block["profile"], hparams,
                      block.get("track", "default"))
    if not specs and not studies:
        raise ValueError(f"suite {args.suite!r} has no trial with the options given" if args.suite else
                         "this grid has no trial: pruning methods run at sparsities in (0, 1) (the dense "
                         "reference is --method dense)")
    return list({spec.config_id(): spec for spec in specs}.values()), studies


def _overrides(pairs: list[str]) -> dict:
    import json

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--set takes HPARAM=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _leaderboard(args) -> int:
    from sparsebench.report.board import build

    registry.discover([])  # to tell current plugin versions from superseded ones
    table = build(args.tracking_uri, args.out)
    print(f"sparsebench: leaderboard of {len(table)} cells written to {args.out}/")
    return 0


def _export(args) -> int:
    from sparsebench.running.bundle import export_bundle

    if args.current or args.drop_superseded:
        registry.discover([])  # to tell current plugin versions from superseded ones
    written = export_bundle(args.tracking_uri, args.out, args.current, args.method, args.task, args.drop_superseded)
    print(f"sparsebench: {sum(written.values())} runs of {len(written)} tasks in {args.out}/")
    return 0


def _verify(args) -> int:
    from sparsebench.running import verify
    from sparsebench.running.bundle import read_bundle

    registry.discover(args.plugins)
    everything = [r for source in args.bundle for r in read_bundle(source)]
    chosen = verify.select(everything, None if args.all else args.sample, args.task, args.method, args.seed, args.draw,
                           args.profile, args.stale)
    if not chosen:
        raise ValueError("no completed run of current plugins in the bundle matches the options given")
    recorded = sum(r["metrics"].get("time/trial_seconds", 0.0) for r in chosen)
    print(f"sparsebench: verify: re-running {len(chosen)} of {len(everything)} runs (recorded trial time "
          f"{recorded:.0f} s) in {args.keep or 'a scratch folder'}", flush=True)
    comparisons, seconds = verify.timed(verify.verify, chosen, everything, args.workers, args.data_root, args.plugins,
                                        keep=args.keep)
    print(f"sparsebench: verify: {verify.summary(comparisons, cpu=verify.cpu_name(), seconds=seconds)}")
    return 0 if verify.passed(comparisons) else 1


def _compare(args) -> int:
    from sparsebench.running import tracking, verify
    from sparsebench.running.bundle import read_bundle

    registry.discover([])
    local = tracking.trial_records(tracking.open_store(tracking.tracking_uri(args.tracking_uri)))
    comparisons, text = verify.store_report(local, read_bundle(args.bundle))
    print(f"sparsebench: reproduction report against {args.bundle}: {text}")
    return 0


def _import(args) -> int:
    from sparsebench.running.bundle import import_bundle

    registry.discover(args.plugins)
    print(f"sparsebench: {import_bundle(args.bundle, args.tracking_uri, strict=args.strict)}")
    return 0


def _check(args) -> int:
    from sparsebench.running.conformance import TASKS, check_file

    registry.discover()
    results = check_file(args.file)
    print(f"sparsebench: the method contract on {', '.join(TASKS)}, for {args.file}:")
    for name, problems in results.items():
        print(f"  {name}: " + ("ok" if not problems else "FAILS\n" + "\n".join(f"    - {p}" for p in problems)))
    return 1 if any(results.values()) else 0


def _list(args) -> int:
    from sparsebench.core import catalog

    listed = catalog.load(args.plugins)
    for kind, entries in (("method", listed.methods), ("task", listed.tasks)):
        print(f"{kind}s:")
        for name, entry in sorted(entries.items()):
            print(f"  {name:24s} {entry['file']}")
            if kind == "method":
                print(f"  {'':24s}   hyperparameters: "
                      + (", ".join(f"{k}={v}" for k, v in entry["hparams"].items()) or "none"))
                if entry["prunes"]:
                    print(f"  {'':24s}   tuned over: {entry['tuned']}" if entry["tuned"]
                          else f"  {'':24s}   not tuned: {entry['untuned']}")
            else:
                print(f"  {'':24s}   profiles: {', '.join(entry['profiles'])}")
        for where, error in listed.broken[kind].items():
            print(f"  BROKEN {where}: {error}")
    print("suites:")
    for name, blocks in SUITES.items():
        tasks = sorted({t for block in blocks for t in block["tasks"]})
        print(f"  {name:24s} {len(blocks)} block(s) over {', '.join(tasks)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
