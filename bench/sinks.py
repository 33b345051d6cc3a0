"""Local SMTP sinks on 127.0.0.1 for the send benchmark, each in its own process.

- ``smtp-sink``: Postfix's C sink (Debian package ``postfix``, ``/usr/sbin/smtp-sink``).
  Installed with apt when missing and running as root; otherwise the aiosmtpd sink stands
  in, and the table says so.
- aiosmtpd: ``python -m bench.sinks aiosmtpd PORT`` accepts and discards every message.
- a minimal asyncio sink, ``python -m bench.sinks slow PORT DELAY``: waits ``DELAY``
  seconds before every reply (greeting, EHLO, MAIL, RCPT, DATA, end of data, RSET), like a
  relay that is not on loopback. smtp-sink's own delays (``-w``, ``-W``) count whole
  seconds, too coarse for this; and aiosmtpd spends about 5 ms of CPU on each 28 KB
  message (it reads DATA line by line), so on two cores it, not the 10 ms, would set the
  pace. This one reads DATA up to the final dot in one search.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SMTP_SINK = "/usr/sbin/smtp-sink"


@dataclass
class Sink:
    """A running sink: where it listens and what it is (for the table)."""

    kind: str  # "smtp-sink" | "aiosmtpd" | "aiosmtpd +10ms"
    port: int
    process: subprocess.Popen[bytes]
    note: str = ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the sink exited with status {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(128)  # the greeting
                s.sendall(b"QUIT\r\n")
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"no SMTP sink listening on 127.0.0.1:{port}")


def ensure_smtp_sink(*, install: bool = True) -> str:
    """The path of smtp-sink, or "" with the reason printed when it cannot be had."""
    if Path(SMTP_SINK).exists():
        return SMTP_SINK
    found = shutil.which("smtp-sink")
    if found:
        return found
    if not install or os.geteuid() != 0 or not shutil.which("apt-get"):
        print("send: smtp-sink missing (not installed here): aiosmtpd stands in", file=sys.stderr)
        return ""
    print("send: installing postfix for smtp-sink (apt-get) ...", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(
        ["apt-get", "install", "-y", "-q", "postfix"],
        env=env,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0 or not Path(SMTP_SINK).exists():
        print("send: could not install postfix: aiosmtpd stands in", file=sys.stderr)
        return ""
    return SMTP_SINK


def start_smtp_sink(path: str) -> Sink:
    port = free_port()
    args = [path]
    if os.geteuid() == 0:
        args += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
    # -m: accept up to 256 sessions at once; backlog 256.
    process = subprocess.Popen(
        [*args, "-m", "256", f"127.0.0.1:{port}", "256"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_listening(port, process)
    return Sink("smtp-sink", port, process)


def start_aiosmtpd() -> Sink:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.sinks", "aiosmtpd", str(port)], stdout=subprocess.DEVNULL
    )
    _wait_listening(port, process)
    return Sink("aiosmtpd", port, process)


def start_slow_sink(delay: float) -> Sink:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.sinks", "slow", str(port), str(delay)],
        stdout=subprocess.DEVNULL,
    )
    _wait_listening(port, process)
    return Sink(f"sink +{delay * 1000:.0f} ms/reply", port, process)


def start_fast_sink(*, install: bool = True) -> Sink:
    """smtp-sink when it can be had, else the aiosmtpd sink (noted)."""
    path = ensure_smtp_sink(install=install)
    if path:
        return start_smtp_sink(path)
    sink = start_aiosmtpd()
    sink.note = "smtp-sink unavailable: aiosmtpd"
    return sink


# --- the aiosmtpd sink process -------------------------------------------------------------


def _serve_aiosmtpd(port: int) -> None:
    from aiosmtpd.smtp import SMTP, Envelope, Session

    class Discard:
        async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
            return "250 OK"

    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(Discard(), hostname="sink.local", data_size_limit=None),
            host="127.0.0.1",
            port=port,
            backlog=256,
        )
    )
    try:
        loop.run_forever()
    finally:
        server.close()


async def _slow_session(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    async def reply(text: bytes) -> None:
        await asyncio.sleep(delay)
        writer.write(text)
        await writer.drain()

    try:
        await reply(b"220 sink.local ESMTP\r\n")
        while True:
            line = await reader.readuntil(b"\r\n")
            verb = line[:4].upper()
            if verb == b"EHLO":
                await reply(b"250-sink.local\r\n250-8BITMIME\r\n250 SIZE 0\r\n")
            elif verb == b"DATA":
                await reply(b"354 go ahead\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                await reply(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                await reply(b"221 bye\r\n")
                break
            else:  # HELO, MAIL, RCPT, RSET, NOOP
                await reply(b"250 OK\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _serve_slow(port: int, delay: float) -> None:
    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: _slow_session(r, w, delay),
            "127.0.0.1",
            port,
            backlog=256,
            limit=1 << 20,
        )
        async with server:
            await server.serve_forever()

    asyncio.run(main())


if __name__ == "__main__":
    if sys.argv[1] == "aiosmtpd":
        _serve_aiosmtpd(int(sys.argv[2]))
    else:
        _serve_slow(int(sys.argv[2]), float(sys.argv[3]))
