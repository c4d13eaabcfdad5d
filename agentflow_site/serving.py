"""uvicorn's HTTP protocol with TCP_NODELAY on every connection: `--http` names it.

    uvicorn agentflow_site.asgi:application --http agentflow_site.serving:HTTPProtocol ...

asyncio turns Nagle's algorithm off only on sockets whose `proto` is IPPROTO_TCP. uvicorn with
`--workers N` binds the listening socket itself as `socket.socket(AF_INET)`, proto 0, and the
connections it accepts inherit that 0: every small response then waits for the client's delayed
ACK (~40 ms on Linux) before its last segment leaves. Without `--workers` asyncio sets the
option already; setting it again costs one system call per connection.
"""

import asyncio
import socket

from uvicorn.protocols.http.auto import AutoHTTPProtocol


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on a TCP transport's socket (nothing for a Unix socket)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# AutoHTTPProtocol is a variable: httptools' protocol when it is installed, else h11's.
class HTTPProtocol(AutoHTTPProtocol):  # type: ignore[valid-type,misc]
    """uvicorn's own protocol (httptools when installed, else h11), with TCP_NODELAY."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        set_nodelay(transport)
        super().connection_made(transport)


# --- several processes on one port --------------------------------------------------------------
#
#     python -m agentflow_site.serving --host 0.0.0.0 --port 8000 --processes 4
#
# uvicorn's `--workers N` has its children accept on one shared socket; a client that opens its
# keep-alive connections at once (a load balancer, a proxy's pool) can land all of them on one
# child while the others sit idle (bench/bench_scaleout.py: 0.97 cores against 0.00). Here each
# process binds its own SO_REUSEPORT socket on the port and the kernel spreads connections among
# them by address.


def _listener(host: str, port: int, *, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _serve_one(host: str, port: int, log_level: str) -> None:
    import uvicorn

    config = uvicorn.Config(
        "agentflow_site.asgi:application",
        http=HTTPProtocol,
        access_log=False,
        log_level=log_level,
    )
    uvicorn.Server(config).run(sockets=[_listener(host, port, reuse_port=True)])


def main(argv: list[str] | None = None) -> int:
    import argparse
    import os
    import signal
    import subprocess
    import sys

    parser = argparse.ArgumentParser(prog="python -m agentflow_site.serving")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _serve_one(args.host, args.port, args.log_level)
        return 0
    try:  # a plain bind fails when anyone holds the port, an AgentFlow on SO_REUSEPORT included
        _listener(args.host, args.port, reuse_port=False).close()
    except OSError as exc:
        print(f"Port {args.port} on {args.host} is taken ({exc.strerror}).", file=sys.stderr)
        return 1
    child = [sys.executable, "-m", "agentflow_site.serving", "--child"]
    child += ["--host", args.host, "--port", str(args.port), "--log-level", args.log_level]
    children = [subprocess.Popen(child) for _ in range(max(1, args.processes))]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in children:
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while any(proc.poll() is None for proc in children):
        try:
            os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if not stopping:  # one died: stop the rest, so a supervisor restarts the whole set
            stop()
    return 0 if stopping else 1


if __name__ == "__main__":
    raise SystemExit(main())
