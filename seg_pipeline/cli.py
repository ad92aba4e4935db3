"""`seg-pipeline`: generate demo data, materialize a version, run the demo.

Runs are real Dagster runs of the code location's jobs, recorded in `$DAGSTER_HOME`
(default `./.dagster`), so they show in `dagster dev` afterwards and can be re-executed there.
"""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import shutil
import signal
import sys
import traceback
from datetime import date
from pathlib import Path

import dagster as dg

from seg_pipeline.launch.runs import RunFailed
from seg_pipeline.settings import RETRAIN_EVERY_DAYS, PipelineSettings, SettingsError
from seg_pipeline.storage.warehouse import WarehouseBusy

SAMPLE_QUERY = (
    "select rfm_segment, count(*) as customers, round(avg(churn_risk), 3) as churn_risk "
    "from current_segments group by all order by customers desc"
)


class _Parser(argparse.ArgumentParser):
    """Bad arguments end in one line and exit 2 (the usage is one `--help` away)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def _campaign(text: str) -> tuple[str, float]:
    action, _, lift = text.rpartition("=")
    try:
        value = float(lift)
    except ValueError:
        value = -1.0
    if not action or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected ACTION=LIFT with LIFT in [0, 1], got {text!r}")
    return action.strip(), value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="seg-pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="print the Dagster event log and stack traces")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    gen = commands.add_parser("generate", help="write seeded demo landing data")
    gen.add_argument("--out", type=Path, required=True)
    gen.add_argument("--customers", type=_positive, default=20_000)
    gen.add_argument("--days", type=_positive, default=730)
    gen.add_argument("--seed", type=int, default=42)
    gen.add_argument("--end-date", type=_day, default=None, help="last landed day (default 2026-11-21)")
    gen.add_argument("--format", choices=["csv", "parquet"], default="csv")
    gen.add_argument(
        "--campaign-lift", type=_campaign, action="append", metavar="ACTION=LIFT",
        help="instead of generating: simulate a campaign that raised the purchase rate of the action's audience "
        "(SEG_EXPORT_DIR/<--campaign-as-of>/) by LIFT over the churn horizon, as extra orders in --out",
    )  # fmt: skip
    gen.add_argument("--campaign-as-of", type=_day, default=None, metavar="YYYY-MM-DD", help="the version acted on")
    mat = commands.add_parser("materialize", help="make the segment version for an as-of date exist")
    mat.add_argument("--as-of", type=_day, required=True, metavar="YYYY-MM-DD")
    commands.add_parser("demo", help="generate demo data if absent, materialize the latest day")
    commands.add_parser("rollback", help="put the previously published analyst file back (atomic)")
    rep = commands.add_parser("report", help="write the HTML report of a version (default: the latest)")
    rep.add_argument("--as-of", type=_day, default=None, metavar="YYYY-MM-DD")
    rep.add_argument("--out", type=Path, default=None, help="folder (default: reports/ beside the analyst file)")
    bench = commands.add_parser("bench", help="time a cold and a next-day materialize per stage against a floor")
    bench.add_argument("--quick", action="store_true", help="20k customers, 300k orders (smoke run)")
    bench.add_argument("--work-dir", type=Path, default=Path("data/bench"))
    bench.add_argument("--orders", type=int, default=None, help="default 10,000,000")
    bench.add_argument("--customers", type=int, default=None, help="default 1,000,000")
    bench.add_argument("--days", type=_positive, default=730)
    bench.add_argument(
        "--retrain-every-days",
        type=_positive,
        default=RETRAIN_EVERY_DAYS,
        help=f"SEG_RETRAIN_EVERY_DAYS of the runs (default {RETRAIN_EVERY_DAYS})",
    )
    bench.add_argument("--shards", type=_positive, default=1, help="SEG_CUSTOMER_SHARDS of the runs (default 1)")
    bench.add_argument("--executor", choices=("in_process", "multiprocess"), default="in_process",
                       help="SEG_EXECUTOR of the runs (default in_process)")  # fmt: skip
    bench.add_argument("--out", type=Path, default=None, help="result JSON (default <work-dir>/bench.json)")
    args = parser.parse_args(argv)
    try:
        if args.command == "generate":
            return _generate(args)
        if args.command == "bench":
            return _bench(args)
        settings = PipelineSettings.from_env()
        if args.command == "materialize":
            return _materialize(settings, args.as_of, args.verbose)
        if args.command == "rollback":
            return _rollback(settings)
        if args.command == "report":
            return _report(settings, args.as_of, args.out)
        return _demo(settings, args.verbose)
    except (SettingsError, RunFailed, FileNotFoundError, WarehouseBusy) as error:
        log = getattr(error, "log_file", None)
        print(f"seg-pipeline: {error}" + (f" [log: {log}]" if log else ""), file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - the last line is the error; its trace goes to a file
        log = _crash_log(error)
        print(f"seg-pipeline: {type(error).__name__}: {_first_line(error)} [log: {log}]", file=sys.stderr)
        return 1


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "no message"


def _crash_log(error: BaseException) -> Path:
    """Write the error's stack trace to `$DAGSTER_HOME/logs/seg-pipeline-crash.log` and return its path."""
    folder = dagster_home() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "seg-pipeline-crash.log"
    path.write_text("".join(traceback.format_exception(error)))
    return path


def _generate(args: argparse.Namespace) -> int:
    from seg_pipeline.devtools.demo_data import generate_landing

    if args.campaign_lift:
        return _plant_campaigns(args)

    extra = {"end_date": args.end_date} if args.end_date else {}
    summary = generate_landing(
        args.out, customers=args.customers, days=args.days, seed=args.seed, file_format=args.format,
        progress=print if sys.stdout.isatty() else None, **extra,
    )  # fmt: skip
    print(f"wrote {summary.orders:,} orders of {summary.customers:,} customers to {args.out}")
    return 0


def _plant_campaigns(args: argparse.Namespace) -> int:
    """Extra orders in `--out` for the audiences of version `--campaign-as-of` (see `plant_campaign`)."""
    import polars as pl

    from seg_pipeline.devtools.demo_data import plant_campaign
    from seg_pipeline.storage.audiences import file_stem

    if args.campaign_as_of is None:
        raise SettingsError("--campaign-lift needs --campaign-as-of: the version whose audiences were acted on")
    settings = PipelineSettings.from_env()
    folder = Path(settings.export_dir) / args.campaign_as_of.isoformat()
    for action, lift in args.campaign_lift:
        path = folder / f"{file_stem(action)}.csv"
        if not path.exists():
            raise FileNotFoundError(f"{path}: no audience file of {action!r} (materialize {args.campaign_as_of} first)")
        treated = pl.read_csv(path, columns=["customer_id"], schema_overrides={"customer_id": pl.String})
        try:
            written = plant_campaign(
                args.out, treated["customer_id"], args.campaign_as_of, lift,
                horizon_days=settings.churn_horizon_days, seed=args.seed, tag=f"campaign-{file_stem(action)}",
            )  # fmt: skip
        except ValueError as error:
            print(f"seg-pipeline: {action!r}: {error}", file=sys.stderr)
            return 1
        print(f"planted {written:,} campaign orders for {action!r} (lift {lift}) in {args.out}/orders")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import json

    from seg_pipeline.devtools.bench import BenchmarkError, format_report, run_benchmark

    sizes = {name: value for name in ("orders", "customers") if (value := getattr(args, name)) is not None}
    try:
        result = run_benchmark(
            args.work_dir, days=args.days, quick=args.quick, retrain_every_days=args.retrain_every_days,
            shards=args.shards, executor=args.executor, **sizes,
        )  # fmt: skip
    except BenchmarkError as error:
        print(f"seg-pipeline: {error}", file=sys.stderr)
        return 1
    out = args.out or args.work_dir / "bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\n{format_report(result)}\n\nresult: {out}")
    return 0


def _materialize(settings: PipelineSettings, as_of: date, verbose: bool) -> int:
    """One run for `as_of`; warnings go to stderr before the summary (or the error) line."""
    from seg_pipeline.launch.runs import materialize_as_of

    outcome = materialize_as_of(
        settings, as_of, dagster_instance(), log_level="DEBUG" if verbose else "CRITICAL",
        notify=lambda line: print(f"seg-pipeline: {line}", file=sys.stderr, flush=True),
    )  # fmt: skip
    for line in outcome.warnings:
        print(f"seg-pipeline: warning: {line}", file=sys.stderr)
    print(outcome.summary)
    return 0


def _report(settings: PipelineSettings, as_of: date | None, out: Path | None) -> int:
    from seg_pipeline.defs.report import report_dir
    from seg_pipeline.report import ReportError, write_report

    try:
        print(write_report(settings.warehouse_path, out or report_dir(settings), as_of))
    except ReportError as error:
        print(f"seg-pipeline: {error}", file=sys.stderr)
        return 1
    return 0


def _rollback(settings: PipelineSettings) -> int:
    from seg_pipeline.storage.warehouse import rollback

    rollback(settings.warehouse_path)
    print(f"rolled {settings.warehouse_path} back to the previously published file")
    return 0


def _demo(settings: PipelineSettings, verbose: bool) -> int:
    from seg_pipeline.devtools.demo_data import generate_landing
    from seg_pipeline.storage.landing import scan

    if not scan(settings.landing_dir, "orders"):
        print(f"generating demo landing data in {settings.landing_dir} ...")
        generate_landing(Path(settings.landing_dir))
        settings = PipelineSettings.from_env()  # the partitions start at the first landed day, unless set
    latest = max(scan(settings.landing_dir, "orders"))
    _materialize(settings, latest, verbose)
    print(f"\nanalyst file: {settings.warehouse_path}")
    print(f"report: {Path(settings.warehouse_path).parent / 'reports' / f'segments-{latest}.html'}")
    print(f'try: duckdb -readonly {settings.warehouse_path} "{SAMPLE_QUERY}"')
    return 0


def dagster_home() -> Path:
    """`$DAGSTER_HOME`, default ./.dagster, as an absolute path."""
    return Path(os.environ.get("DAGSTER_HOME") or ".dagster").resolve()


def dagster_instance() -> dg.DagsterInstance:
    """The Dagster instance in `$DAGSTER_HOME` (default ./.dagster), set up with the project's dagster.yaml if new.

    Set up under a file lock: two commands started together on a new home would otherwise both
    write its config and create its SQLite schema, and one of them would fail.
    """
    home = dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    with (home / ".setup.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = home / "dagster.yaml"
        if not config.exists():
            shutil.copyfile(Path(__file__).with_name("dagster.yaml"), config)
        return dg.DagsterInstance.get()


def entry() -> None:
    """The `seg-pipeline` command: `main`, then an immediate exit once its output is flushed.

    Everything `main` writes is committed and closed when it returns; what is left is the
    interpreter tearing down dagster, sklearn, GX and friends object by object (a full
    garbage collection of the heap, over a second of a next-day run), which nobody waits for.
    """
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C: the run is marked failed
    try:
        code = main()
    except KeyboardInterrupt:
        print("seg-pipeline: interrupted", file=sys.stderr)
        code = 130
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
