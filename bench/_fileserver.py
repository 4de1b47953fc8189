"""A plain static file server for bench/transfer.py, run in its own process (stdlib only).

    python bench/_fileserver.py <directory> [--host 127.0.0.1] [--port 0] [--tls-cert PEM --tls-key PEM]

Serves the files directly inside ``directory`` at ``/<name>`` with Content-Length, ETag, Last-Modified
and Accept-Ranges (``Range: bytes=N-`` and ``bytes=N-M`` are honoured, ``If-Range`` too), sending bodies
with ``socket.sendfile`` so the server costs next to no CPU (over TLS: in megabyte pieces, encrypted
by the ``ssl`` module). ``GET /_count?path=/<name>`` answers the
number of requests received for that path as JSON. On start it prints ``PORT <n>`` on stdout.
"""

from __future__ import annotations

import argparse
import email.utils
import io
import json
import os
import re
import ssl
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class FileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a CDN would
    root: ClassVar[Path] = Path()
    counts: ClassVar[Counter[str]] = Counter()
    lock: ClassVar[threading.Lock] = threading.Lock()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def _serve(self, *, send_body: bool) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        if path == "/_count":
            wanted = parse_qs(parts.query).get("path", [""])[0]
            with self.lock:
                count = self.counts[wanted]
            self._small(200, json.dumps({"path": wanted, "count": count}).encode(), "application/json")
            return
        with self.lock:
            self.counts[path] += 1
        name = path.lstrip("/")
        file = self.root / name
        if not name or "/" in name or name.startswith(".") or not file.is_file():
            self._small(404, b"not found", "text/plain")
            return
        with file.open("rb") as f:
            stat = os.fstat(f.fileno())
            size = stat.st_size
            etag = f'"{stat.st_mtime_ns:x}-{size:x}"'
            start, end = 0, size - 1
            status = 200
            requested = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            if requested and (if_range is None or if_range == etag):
                match = _RANGE.match(requested.strip())
                if match is None or int(match.group(1)) >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = int(match.group(1))
                if match.group(2):
                    end = min(int(match.group(2)), size - 1)
                status = 206
            length = max(end - start + 1, 0)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if send_body and length:
                try:
                    if isinstance(self.connection, ssl.SSLSocket):
                        _send_encrypted(self.connection, f, start, length)
                    else:
                        self.connection.sendfile(f, start, length)
                except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                    self.close_connection = True

    def _small(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _send_encrypted(connection: ssl.SSLSocket, f: io.BufferedReader, start: int, length: int) -> None:
    """TLS cannot use sendfile: megabyte pieces (``SSLSocket.sendfile`` would send 8 KiB at a time)."""
    f.seek(start)
    piece = memoryview(bytearray(1 << 20))
    while length:
        n = f.readinto(piece[: min(len(piece), length)])
        if not n:
            break
        connection.sendall(piece[:n])
        length -= n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert", type=Path, help="serve https with this certificate chain (PEM)")
    parser.add_argument("--tls-key", type=Path, help="the certificate's private key (PEM)")
    args = parser.parse_args()
    FileHandler.root = args.directory.resolve()
    server = ThreadingHTTPServer((args.host, args.port), FileHandler)
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
