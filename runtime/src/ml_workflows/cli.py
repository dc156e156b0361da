"""Command line: ``run`` (train -> score, on sample data unless datasets are given), ``generate``, ``train``, ``score``;
``promote`` / ``rollback`` / ``models`` for the current model (:mod:`.promotion`; no cluster, no Prefect run).

Exit status: 0 success, 1 the run failed, 2 usage or configuration error — so a scheduler can tell
"fix the config" from "retry later"; 130 interrupted (SIGINT, Ctrl-C), 143 terminated (SIGTERM, e.g.
``docker stop`` or an ECS task stop). Both signals stop the run the same way: the step in progress
removes its staging area, nothing is committed, and the cluster the run started is closed. Options
override the ``PIPELINE_*`` environment variables (see :mod:`.settings`); progress and Prefect logs go to
the console, the summary to stdout.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings


EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every cleanup path of an interrupted run also runs for it."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated(f"signal {signum}")


# option -> PIPELINE_* setting it overrides
COMMON = {
    "data_url": "local directory or s3://bucket/prefix for datasets, models and predictions",
    "cluster": "local | existing | fargate",
    "scheduler_address": "the scheduler of an existing Dask cluster (with --cluster existing), e.g. tcp://host:8786",
    "n_workers": "Dask workers (local or Fargate)",
    "memory_limit": "memory limit per local worker, e.g. 2GiB",
}


def _prog() -> str:
    """The command as typed: the console script's name (the project's), or ``python -m ml_workflows``."""
    name = os.path.basename(sys.argv[0]) if sys.argv else ""
    return name if name and not name.endswith(".py") else "python -m ml_workflows"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Batch ML pipeline: training and out-of-core scoring orchestrated by Prefect on a Dask cluster "
        "(schema.py and model.py are yours). Settings come from PIPELINE_* variables; options override them.",
        epilog="exit status: 0 ok, 1 run failed, 2 usage or configuration error",
    )
    common = argparse.ArgumentParser(add_help=False)
    for name, text in COMMON.items():
        kwargs: dict[str, Any] = {"help": text}
        if name == "cluster":
            kwargs["choices"] = ["local", "existing", "fargate"]
        if name == "n_workers":
            kwargs["type"] = int
        common.add_argument("--" + name.replace("_", "-"), **kwargs)
    common.add_argument("--processes", action="store_true", default=None, help="local workers as processes")
    common.add_argument("--seed", type=int, help="random seed (data and split)")

    sizes = argparse.ArgumentParser(add_help=False)
    for name in ("train-rows", "train-files", "score-rows", "score-files"):
        sizes.add_argument(f"--{name}", type=int, dest=f"sample_{name.replace('-', '_')}", help=f"sample data: {name}")
    gate = argparse.ArgumentParser(add_help=False)
    gate.add_argument("--quality-gate-min", type=float, help="threshold of the model's quality gate (model.py)")

    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", parents=[common, sizes, gate], help="train, then score (sample data unless given)")
    run.add_argument("--train-dataset", help="training dataset URL (default: generate the sample data)")
    run.add_argument("--score-dataset", help="dataset URL to score (default: generate the sample data)")
    sub.add_parser("generate", parents=[common, sizes], help="write the sample train/score datasets (any size)")
    train = sub.add_parser("train", parents=[common, gate], help="train on a dataset and commit the model")
    train.add_argument("--dataset", help="training dataset URL (default <data>/datasets/train)")
    score = sub.add_parser("score", parents=[common], help="score a dataset with a committed model")
    score.add_argument("--dataset", help="dataset URL to score (default <data>/datasets/score)")
    score.add_argument("--model", help="model URL (default: the latest committed model)")
    promote = sub.add_parser("promote", parents=[common], help="make a committed candidate model the current one")
    promote.add_argument("--model", required=True, help="the candidate's URL (<data>/models/<run id>) or run id")
    promote.add_argument("--reason", default="promoted by hand", help="recorded with the promotion")
    rollback = sub.add_parser("rollback", parents=[common], help="go back to the previous current model")
    rollback.add_argument("--reason", default="rolled back by hand", help="recorded with the rollback")
    sub.add_parser("models", parents=[common], help="the current model, earlier ones and the recorded decisions")
    return parser


def lifecycle(command: str, args: argparse.Namespace, settings: Settings) -> int:
    from .settings import normalise_url

    """``promote`` / ``rollback`` / ``models``: one atomic write of ``<data>/models/_LATEST`` each, recorded."""
    from . import promotion, storage

    root = storage.join(settings.data_url, "models")
    so = settings.storage_options
    try:
        if command == "promote":
            url = normalise_url(args.model) if "/" in args.model else storage.join(root, args.model)
            state = promotion.promote(root, url, args.reason, so)
        elif command == "rollback":
            state = promotion.rollback(root, args.reason, so)
        else:
            for event in promotion.events(root, so):
                print(f"{event['at']}  {event['action']:<9}  {event.get('model')}  {event.get('reason', '')}")
            state = promotion.state(root, so)
    except promotion.PromotionError as exc:
        print(f"{command} refused: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"current model: {state.get('latest') or 'none'}")
    if state.get("history"):
        print(f"previous:      {state['history'][-1]}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help exits 0, usage errors 2
        return int(exc.code or 0)

    # Settings (pydantic) only now: `--help` and usage errors import none of it.
    from .settings import ConfigError, Settings

    settings_args = {k: v for k, v in vars(args).items() if v is not None and k in Settings.model_fields}
    # Options become PIPELINE_* variables, so the flow (and anything it starts) sees one configuration.
    for key, value in settings_args.items():
        os.environ["PIPELINE_" + key.upper()] = str(value)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    if args.command in ("promote", "rollback", "models"):
        return lifecycle(args.command, args, settings)

    # Without PREFECT_API_URL Prefect starts a temporary local server; its first start migrates a new
    # database, which takes longer than Prefect's 20 s default on a busy laptop or CI runner. That
    # server's telemetry writes to the same SQLite file and prints a "database is locked" traceback when
    # it loses the race: off unless the user turned it on.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from .project import current

    flows = current().module("flows")  # Prefect is imported only for real work: --help stays fast
    from .prefect_api import use_local_server

    api = use_local_server() or "a temporary server (make server starts a lasting one)"
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)

    print(f"{args.command}: {settings.describe()}, Prefect API {api}", file=sys.stderr, flush=True)
    try:
        if args.command == "run":
            result = flows.batch_pipeline(train_dataset_url=args.train_dataset, score_dataset_url=args.score_dataset)
            print(result["summary"])
        elif args.command == "generate":
            for ds in flows.generate_flow():
                print(f"dataset: {ds['url']}  {ds['rows']:,} rows in {ds['files']} files")
        elif args.command == "train":
            print(flows.train_flow(dataset_url=args.dataset)["summary"])
        else:
            print(flows.score_flow(model_url=args.model, dataset_url=args.dataset)["summary"])
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print("terminated (SIGTERM): nothing committed", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted: nothing committed", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        print(f"{args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
