"""The `interview` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

from interview_core.config import ConfigError, Settings

log = logging.getLogger("interview")


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("data_dir", "control_host", "control_port", "edge_host", "edge_port", "embedded_pg_port",
                 "embedded_ray_port", "warm_interviews", "interviews_per_actor"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = Path(value) if name == "data_dir" else value
    return Settings.from_env(**overrides)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="where the embedded database and generated credentials live "
                   "(INTERVIEW_DATA_DIR, default .interview)")


def _add_addresses(p: argparse.ArgumentParser) -> None:
    p.add_argument("--control-host", help="INTERVIEW_CONTROL_HOST (default 127.0.0.1)")
    p.add_argument("--control-port", type=int, help="INTERVIEW_CONTROL_PORT (default 50051)")
    p.add_argument("--edge-host", help="INTERVIEW_EDGE_HOST (default 127.0.0.1)")
    p.add_argument("--edge-port", type=int, help="INTERVIEW_EDGE_PORT (default 8080)")
    p.add_argument("--pg-port", dest="embedded_pg_port", type=int,
                   help="embedded PostgreSQL port (INTERVIEW_EMBEDDED_PG_PORT, default 54329)")
    p.add_argument("--ray-port", dest="embedded_ray_port", type=int,
                   help="local Ray head port (INTERVIEW_EMBEDDED_RAY_PORT, default 6389)")
    p.add_argument("--warm-interviews", type=int,
                   help="interviews that can start without a process start (INTERVIEW_WARM_INTERVIEWS, default 50)")
    p.add_argument("--interviews-per-actor", type=int,
                   help="interviews one actor process serves (INTERVIEW_INTERVIEWS_PER_ACTOR, default 10)")


def cmd_up(args: argparse.Namespace) -> int:
    from launcher.stack import run_stack

    return run_stack(_settings(args))


def cmd_migrate(args: argparse.Namespace) -> int:
    from launcher.stack import prepare_database

    settings = _settings(args)
    _, applied, stop = prepare_database(settings, keep_running=False)
    stop()
    print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")
    return 0


def cmd_control(args: argparse.Namespace) -> int:
    from control.server import serve

    asyncio.run(serve(_settings(args)))
    return 0


def cmd_edge(args: argparse.Namespace) -> int:
    from edge.server import serve

    asyncio.run(serve(_settings(args)))
    return 0


def cmd_bench_live(args: argparse.Namespace) -> int:
    from loadtest.live_bench import main as bench_main

    return int(bench_main(args.bench_args))


def cmd_bench_control(args: argparse.Namespace) -> int:
    from loadtest.control_bench import main as bench_main

    return int(bench_main(duration_s=args.duration, concurrency=args.concurrency))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interview", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the whole stack on embedded defaults",
                        description="Starts PostgreSQL (embedded unless DATABASE_URL is set), applies "
                        "migrations, a local Ray head (unless RAY_ADDRESS is set), the control service and "
                        "the edge, supervised, until Ctrl-C or SIGTERM.")
    _add_common(up)
    _add_addresses(up)
    up.set_defaults(func=cmd_up)

    mig = sub.add_parser("migrate", help="apply pending database migrations")
    _add_common(mig)
    mig.add_argument("--pg-port", dest="embedded_pg_port", type=int)
    mig.set_defaults(func=cmd_migrate)

    ctl = sub.add_parser("control", help="run the gRPC control service alone (settings from the environment)")
    _add_common(ctl)
    ctl.add_argument("--control-host")
    ctl.add_argument("--control-port", type=int)
    ctl.set_defaults(func=cmd_control)

    edg = sub.add_parser("edge", help="run the candidate edge alone (joins RAY_ADDRESS; settings from the environment)")
    _add_common(edg)
    edg.add_argument("--edge-host")
    edg.add_argument("--edge-port", type=int)
    edg.set_defaults(func=cmd_edge)

    bench = sub.add_parser("bench-control", help="measure the control service's throughput and latency",
                           description="Starts a private stack on embedded defaults and measures "
                           "CreateInvitation, GetSession and a bare health Check.")
    bench.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    bench.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    bench.set_defaults(func=cmd_bench_control)
    live = sub.add_parser("bench-live", help="measure how many live interviews this machine holds",
                          description="Starts a private stack and measures joins, frames lost, round trip, "
                          "memory and CPU with concurrent real-time interviews. Options after `--` go to "
                          "the bench (try `interview bench-live -- --help`).")
    live.add_argument("bench_args", nargs=argparse.REMAINDER)
    live.set_defaults(func=cmd_bench_live)

    from launcher import admin, demo

    admin.register(sub)  # tenants, keys, templates, candidates, invite, sessions, transcript, watch
    demo.register(sub)  # demo, say
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"interview: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130



if __name__ == "__main__":
    sys.exit(main())
