"""The `sandbox` command: run the API, a worker, or both under one supervisor."""

import argparse
import asyncio
import ipaddress
import sys

from service import logs
from service.settings import Settings, get_settings


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(settings: Settings) -> None:
    """Refuse to expose an unauthenticated API beyond this machine unless told to."""
    keyed = settings.api_keys or settings.tenants_file
    if not is_loopback(settings.host) and not keyed and not settings.allow_insecure_bind:
        sys.exit(f"refusing to bind {settings.host} without SANDBOX_API_KEYS or a tenants file; "
                 "set SANDBOX_ALLOW_INSECURE_BIND=true to do it anyway")


def run_api(settings: Settings, workers: int) -> None:
    import uvicorn

    check_bind(settings)
    uvicorn.run("service.api.app:create_app", factory=True, host=settings.host,
                port=settings.port, workers=workers, loop="uvloop", http="httptools",
                timeout_keep_alive=settings.http_keep_alive_s,
                log_level=settings.log_level.lower(), access_log=False, log_config=None)


def run_worker(settings: Settings) -> None:
    import uvloop

    from service.worker.main import serve_worker

    uvloop.run(serve_worker(settings))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("api", help="serve the HTTP API")
    api.add_argument("--workers", type=int, default=1, help="API processes")
    sub.add_parser("worker", help="run a worker: a warm pool on this host's Docker engine")
    serve = sub.add_parser("serve", help="API and workers, supervised, in the foreground")
    serve.add_argument("--api-processes", type=int, default=1)
    serve.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)

    settings = get_settings()
    logs.configure(settings.log_level)
    if args.command == "api":
        run_api(settings, args.workers)
    elif args.command == "worker":
        run_worker(settings)
    else:
        from service.supervisor import supervise

        check_bind(settings)
        sys.exit(asyncio.run(supervise(args.api_processes, args.workers)))


if __name__ == "__main__":
    main()
