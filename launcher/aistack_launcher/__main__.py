"""`python -m aistack_launcher` (`make run`): the services, their helpers and Envoy on one machine."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from aistack_edge.settings import REPO_ROOT, EdgeSettings
from aistack_kit.auth import generate_token
from aistack_kit.config import ConfigError, Env, Mode

from aistack_launcher.catalog import AUX_PROCESSES, SERVICES
from aistack_launcher.plan import Kind, Plan, build_plan, place_replicas, select
from aistack_launcher.supervisor import Supervisor


def main(argv: Sequence[str] | None = None) -> int:
    env = Env()
    parser = argparse.ArgumentParser(prog="aistack_launcher", description=__doc__)
    parser.add_argument(
        "--services",
        default=",".join(env.str_list("AISTACK_SERVICES")),
        help="comma-separated catalog names to start (default: all; env AISTACK_SERVICES)",
    )
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=Path(env.str("AISTACK_RUN_DIR", str(REPO_ROOT / "run"))),
        help="token, logs and Envoy config go here (env AISTACK_RUN_DIR)",
    )
    args = parser.parse_args(argv)
    try:
        port_offset = env.int("AISTACK_PORT_OFFSET", 0, minimum=0, maximum=20000)
        services = place_replicas(
            select(SERVICES, [n.strip() for n in args.services.split(",") if n.strip()]), env
        )
        tokens, generated = _tokens(env)
        plan = build_plan(
            services,
            AUX_PROCESSES,
            tokens=tokens,
            edge=EdgeSettings.from_env(env),
            run_dir=args.run_dir,
            port_offset=port_offset,
            startup_timeout_seconds=env.float("AISTACK_STARTUP_TIMEOUT_SECONDS", 300.0, minimum=1.0),
        )
    except ConfigError as exc:
        print(f"aistack: configuration error: {exc}", file=sys.stderr)
        return 2
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    token_file = run_dir / "token"
    if generated:
        _write_secret(token_file, tokens[0])
    else:
        # A token file left by an earlier run would now be wrong.
        token_file.unlink(missing_ok=True)
    helpers = [p.name for p in plan.of_kind(Kind.AUX)] + ["envoy"]
    print(f"aistack: starting {', '.join(s.name for s in services)} (with {', '.join(helpers)})")
    supervisor = Supervisor(plan, run_dir, sys.stdout)
    return asyncio.run(supervisor.run(lambda: _banner(plan, token_file, tokens[0] if generated else None)))


def _tokens(env: Env) -> tuple[list[str], bool]:
    tokens = env.str_list("API_TOKENS")
    if tokens:
        return tokens, False
    if env.mode() is Mode.PRODUCTION:
        raise ConfigError("API_TOKENS must hold at least one token in production (AISTACK_MODE=production)")
    return [generate_token()], True


def _write_secret(path: Path, secret: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    os.chmod(path, 0o600)


def _banner(plan: Plan, token_file: Path, generated: str | None) -> None:
    url = f"http://localhost:{plan.edge_port}"
    host = f"localhost:{plan.edge_port}"
    if generated:
        token_line = f"token: {generated}   (saved in {token_file}, mode 600)"
        token = f"$(cat {token_file})"
    else:
        token_line = "token: the first of API_TOKENS (export TOKEN=... for the examples below)"
        token = "$TOKEN"
    bearer = f'"Authorization: Bearer {token}"'
    lines = [
        "",
        f"aistack is up on {url}",
        token_line,
        "",
        "REST (through Envoy):",
        f"  curl -s {url}/api/v1/health",
        f"  curl -s -H {bearer} {url}/api/v1/services",
        "gRPC (reflection, no .proto files needed):",
        f"  .venv/bin/grpcurl -plaintext {host} list",
        f"  .venv/bin/grpcurl -plaintext -H {bearer} {host} aistack.platform.v1.PlatformService/ListServices",
        "Python client / CLI:",
        f"  AISTACK_URL={host} .venv/bin/aistack health",
        "",
        f"logs: {plan.envoy_config_path.parent / 'logs'}/<service>.log   Ctrl-C stops everything.",
    ]
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
