"""Command line: ``run`` (train -> score, on sample data unless datasets are given), ``generate``, ``train``, ``score``;
``promote`` / ``rollback`` / ``models`` for the current model (:mod:`.promotion`; no cluster, no Prefect run).

Exit status: 0 success, 1 the run failed (or its Prefect API stopped answering), 2 usage, configuration or input
error — a missing dataset or model, a file of other columns, no credentials for s3://, checked before Prefect and
Dask start (:mod:`.inputs`) — so a scheduler can tell "fix the config" from "retry later"; 130 interrupted
(SIGINT, Ctrl-C), 143 terminated (SIGTERM, e.g. ``docker stop`` or an ECS task stop). Both signals stop the run
the same way: the step in progress removes its staging area, nothing is committed, and the cluster the run
started is closed. Options override the ``PIPELINE_*`` environment variables (see :mod:`.settings`); progress
and Prefect logs go to the console, the summary to stdout. The first line names the Prefect API the command
uses: the one you configured, else the project's local server, started if need be (:mod:`.prefect_api`).
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
    import logging

    from . import output_lock, promotion, storage

    root = storage.join(settings.data_url, "models")
    so = settings.storage_options
    # promote / rollback write _LATEST: they take the models' lock, so no decision lands amid a training run's
    locked = output_lock.hold(root, f"{command} by hand", so, timeout=60, log=logging.getLogger(__name__))
    try:
        if command == "promote":
            url = normalise_url(args.model) if "/" in args.model else storage.join(root, args.model)
            with locked:
                state = promotion.promote(root, url, args.reason, so)
        elif command == "rollback":
            with locked:
                state = promotion.rollback(root, args.reason, so)
        else:
            for event in promotion.events(root, so):
                print(f"{event['at']}  {event['action']:<9}  {event.get('model')}  {event.get('reason', '')}")
            state = promotion.state(root, so)
    except (promotion.PromotionError, output_lock.LockHeldError) as exc:
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

    # What the command will read, checked before Prefect and Dask start: a missing dataset or model, a file of other
    # columns or s3:// without credentials costs a second and one line, not a run (exit 2, as for settings).
    from . import inputs
    from .project import current

    try:
        inputs.check_command(
            args.command,
            settings,
            current().module("schema").SCHEMA,
            dataset=getattr(args, "dataset", None),
            train_dataset=getattr(args, "train_dataset", None),
            score_dataset=getattr(args, "score_dataset", None),
            model=getattr(args, "model", None),
        )
    except inputs.InputError as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FileExistsError as exc:  # output_lock.LockHeldError: another run writes the same output (retry later)
        print(f"{args.command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:  # storage did not answer: may heal
        print(f"{args.command} failed: cannot read its inputs: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return run_flow(args.command, args, settings, as_program=argv is None)


def run_flow(command: str, args: argparse.Namespace, settings: Settings, as_program: bool = False) -> int:
    """A flow on the API this command uses (said on the first line): the one you configured, else the project's
    local server, started if it is not up (:mod:`.prefect_api`: it outlives the command, nothing else does)."""
    from . import prefect_api
    from .settings import ConfigError

    # The server's telemetry writes to its SQLite file and prints a "database is locked" traceback when it loses
    # the race: off unless the user turned it on. Prefect's client retries each API call 5 times (~62 s): fewer
    # here, where prefect_api.watch stops a run whose API is gone.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_CLIENT_MAX_RETRIES", prefect_api.CLIENT_RETRIES)
    api, local = prefect_api.choose()
    if local:
        state = "the project's server" if prefect_api.is_up(api) else "the project's server: starting it"
        which, restart = f" ({state}; make server-stop stops it)", "start it again (make server)"
    else:
        which, restart = "", "check the server PREFECT_API_URL names"
    on_sample = command == "generate" or (command == "run" and not (args.train_dataset or args.score_dataset))
    where = settings.for_sample() if on_sample else settings  # the sample works under its own data URL
    print(f"{command}: {where.describe()}, Prefect API {api}{which}", file=sys.stderr, flush=True)
    if local:
        try:
            prefect_api.ensure_up()
        except prefect_api.ServerError as exc:
            print(f"{command} failed: {exc}", file=sys.stderr)
            return EXIT_FAILED
        prefect_api.use(api)

    from .project import current

    flows = current().module("flows")  # Prefect is imported only for real work: --help stays fast
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with prefect_api.watch(api, restart) as watch:
            try:
                if command == "run":
                    train, score = args.train_dataset, args.score_dataset
                    print(flows.batch_pipeline(train_dataset_url=train, score_dataset_url=score)["summary"])
                elif command == "generate":
                    for ds in flows.generate_flow():
                        print(f"dataset: {ds['url']}  {ds['rows']:,} rows in {ds['files']} files")
                elif command == "train":
                    print(flows.train_flow(dataset_url=args.dataset)["summary"])
                else:
                    print(flows.score_flow(model_url=args.model, dataset_url=args.dataset)["summary"])
            except BaseException:
                if watch.lost:  # whatever the loss raised on its way (ApiLost, Prefect's ConnectError)
                    raise prefect_api.ApiLost(watch.lost) from None
                raise
    except prefect_api.ApiLost as exc:
        print(f"{command} failed: {exc}", file=sys.stderr, flush=True)
        if as_program:
            # Prefect's services would now try to deliver their queued events and logs to the API that is gone
            # (~11 s a batch) before the process could end. The run's cleanup is done (cluster closed, staging
            # removed): a program (the console script, python -m) ends here.
            sys.stdout.flush()
            os._exit(EXIT_FAILED)
        return EXIT_FAILED
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
        print(f"{command} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
