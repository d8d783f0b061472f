"""``python -m runner``: serve the reference runner on ``runner_host:runner_port``."""

from __future__ import annotations

import sys

import uvicorn

from runner.app import UnsafeRunnerConfig, check_config, create_app
from tether.settings import get_settings


def main() -> None:
    settings = get_settings()
    try:
        check_config(settings)
    except UnsafeRunnerConfig as err:
        print(f"tether runner: refusing to start: {err}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(
        create_app(settings),
        host=settings.runner_host,
        port=settings.runner_port,
        log_level="warning",
        # Followers hold streams open; don't let them delay a restart past a few seconds.
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    main()
