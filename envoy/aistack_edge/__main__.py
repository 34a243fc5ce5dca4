"""`python -m aistack_edge --target compose --output envoy/envoy.compose.json`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aistack_kit.config import ConfigError

from aistack_edge.build import Target, build_config, write_config
from aistack_edge.settings import EdgeSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aistack_edge", description=__doc__)
    parser.add_argument("--target", choices=[t.value for t in Target], default=Target.EMBEDDED.value)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        settings = EdgeSettings.from_env()
    except ConfigError as exc:
        print(f"aistack_edge: configuration error: {exc}", file=sys.stderr)
        return 2
    write_config(build_config(Target(args.target), settings=settings), args.output)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
