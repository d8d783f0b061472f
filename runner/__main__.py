"""``python -m runner``: serve the reference runner on ``runner_host:runner_port``."""

from __future__ import annotations

import uvicorn

from runner.app import create_app
from tether.settings import get_settings


def main() -> None:
    settings = get_settings()
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
