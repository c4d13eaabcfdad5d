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
