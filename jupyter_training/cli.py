"""``jupyter training`` (``jupyter-training``): list, show, compare, follow and cancel jobs
and sweeps."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from .backends.base import SubmitError
from .client import TrainingClient
from .events import PHASES
from .store import JobNotFound
from .sweeps.launch import cancel_sweep
from .sweeps.state import state_from_store
from .tracking.compare import compare
from .tracking.where import FILTER_FLAGS, filter_values
from .views.compare import compare_text
from .views.sweep import format_sweep_list, format_sweep_table
from .views.text import UNLIMITED, TextJobView, format_job_table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jupyter training", description="Inspect and control jupyter-training jobs."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="List jobs (and sweeps), newest first.")
    listing.add_argument("--json", action="store_true", help="Print JSON job records.")
    listing.add_argument("-n", "--limit", type=int, default=50, help="At most N jobs (50).")
    listing.add_argument("--phase", choices=PHASES, help="Only jobs in this phase.")
    for flag, text in FILTER_FLAGS:
        listing.add_argument(flag, help=text)

    sweeps = commands.add_parser("sweeps", help="List sweeps, or one sweep's trials.")
    sweeps.add_argument("sweep", nargs="?", help="A sweep's id or name: its trials, ranked.")
    sweeps.add_argument("-n", "--limit", type=int, default=50, help="At most N sweeps (50).")
    sweeps.add_argument("--json", action="store_true", help="Print JSON sweep records.")

    compare = commands.add_parser(
        "compare", help="Compare runs: params (differences marked), final metrics, the best."
    )
    compare.add_argument(
        "runs", nargs="*", help="Job ids, id prefixes or names; a sweep's: all its trials."
    )
    compare.add_argument("--last", type=int, help="Also the N newest jobs.")
    compare.add_argument("--objective", help="METRIC:min or METRIC:max (default: first, min).")
    compare.add_argument("--json", action="store_true", help="Print the comparison as JSON.")

    show = commands.add_parser("show", help="Show one job.")
    show.add_argument("job_id", help="Job id or a unique prefix.")
    show.add_argument("--json", action="store_true", help="Print the JSON job record.")

    logs = commands.add_parser("logs", help="Print a job's output, prefixed by rank.")
    logs.add_argument("job_id", help="Job id or a unique prefix.")
    logs.add_argument("-f", "--follow", action="store_true", help="Keep printing until it ends.")
    logs.add_argument("-r", "--rank", type=int, help="Only this rank's output.")

    cancel = commands.add_parser(
        "cancel", help="Cancel a job (every worker stops) or a sweep (every trial stops)."
    )
    cancel.add_argument("job_id", help="Job or sweep id (or a unique prefix), or a sweep name.")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    args = build_parser().parse_args(argv)
    client = TrainingClient()
    try:
        if args.command == "list":
            records = client.find(limit=args.limit, phase=args.phase, **filter_values(args))
            if args.json:
                print(json.dumps([r.summary() for r in records], indent=2))
            else:
                print(format_job_table(records))
                found = client.store.list_sweeps(limit=args.limit)
                if found:
                    print(f"\n{format_sweep_list(found)}")
        elif args.command == "sweeps":
            _sweeps(client, args)
        elif args.command == "show":
            record = client.get(args.job_id)
            if args.json:
                print(json.dumps(record.summary(), indent=2))
            else:
                for key, value in record.summary().items():
                    print(f"{key:>10}: {value}")
                print(f"{'cell':>10}:\n{record.cell}")
        elif args.command == "logs":
            record = client.get(args.job_id)
            view = TextJobView(record, max_lines_per_second=UNLIMITED)
            for event in client.logs(record.id, rank=args.rank, follow=args.follow):
                view.handle(event)
        elif args.command == "compare":
            result = compare(client.store, args.runs, last=args.last, objective=args.objective)
            print(json.dumps(result.to_json(), indent=2) if args.json else compare_text(result))
        elif args.command == "cancel":
            try:
                record = client.cancel(args.job_id)
                print(f"{record.id} {record.phase}")
            except JobNotFound:
                sweep = cancel_sweep(client, args.job_id)
                print(f"{sweep.id} {sweep.phase}")
    except (JobNotFound, ValueError) as err:  # WhereError and bad --objective are ValueErrors
        print(f"jupyter training: {err}", file=sys.stderr)
        return 2
    except SubmitError as err:
        print(f"jupyter training: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _sweeps(client: TrainingClient, args: argparse.Namespace) -> None:
    if args.sweep is None:
        found = client.store.list_sweeps(limit=args.limit)
        if args.json:
            print(json.dumps([s.to_dict() for s in found], indent=2))
        else:
            print(format_sweep_list(found))
        return
    sweep = client.store.get_sweep(args.sweep)
    if args.json:
        data = sweep.to_dict()
        data["jobs"] = [r.summary() for r in client.store.sweep_jobs(sweep.id)]
        print(json.dumps(data, indent=2))
    elif "metric" not in sweep.spec:  # refused at the start: nothing ran
        print(f"{sweep.id} {sweep.name} {sweep.phase}: {sweep.message}")
    else:
        print(format_sweep_table(state_from_store(client.store, sweep)))


if __name__ == "__main__":
    sys.exit(main())
