"""The worker server: ``python3 -m forkqueue.server --addr A --port P [-v]
[--close_on_none] [--suppress_children]``. See ``docs/remote.md``."""
import argparse
import logging
import sys

from ._auth import AuthenticationError
from .workers.remote import default_port
from .workers.remote_server import RemoteServer
from .workers.remote_server import logger as server_logger


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python3 -m forkqueue.server",
        description="Serve forkqueue.workers remote workers.")
    p.add_argument("--addr", "-a", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, "
                        "loopback only)")
    p.add_argument("--port", "-p", type=int, default=default_port,
                   help=f"port to listen on (default: {default_port}; 0 "
                        "picks a free one)")
    p.add_argument("--verbose", "-v", action="count", default=0,
                   help="-v: connections and workers; -vv: debug")
    p.add_argument("--close_on_none", action="store_true",
                   help="stop when a client sends None")
    p.add_argument("--suppress_children", action="store_true",
                   help="-v and -vv apply to the server's own messages only, "
                        "not to what workers log")
    p.add_argument("--handshake-timeout", type=float, default=5.0,
                   help="seconds a connection has to authenticate and send "
                        "its request (default: 5)")
    p.add_argument("--tls-cert", metavar="FILE",
                   help="speak TLS with this certificate chain (PEM)")
    p.add_argument("--tls-key", metavar="FILE",
                   help="the certificate's private key (PEM; default: in "
                        "--tls-cert)")
    args = p.parse_args(argv)
    level = logging.WARNING
    if args.verbose == 1:
        level = logging.INFO
    elif args.verbose >= 2:
        level = logging.DEBUG
    logging.basicConfig(level=logging.WARNING if args.suppress_children
                        else level,
                        format="[%(asctime)s][%(process)d] %(message)s")
    if args.suppress_children:
        server_logger.setLevel(level)
    ctx = None
    try:
        if args.tls_cert:
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server = RemoteServer((args.addr, args.port), args.close_on_none,
                              handshake_timeout=args.handshake_timeout,
                              ssl_context=ctx)
        server.open_socket()
    except (AuthenticationError, OSError) as e:
        print(f"forkqueue.server: cannot start: {e}", file=sys.stderr)
        return 1
    print(f"Listening on {server.addr[0]}:{server.addr[1]}", flush=True)
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
