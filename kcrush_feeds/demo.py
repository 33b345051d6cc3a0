"""``make demo`` and ``make serve-demo``: the whole job on the sample data, on this machine.

``python -m kcrush_feeds.demo [EXAMPLES] [OUT] [--port PORT]`` (``make demo``) copies
``examples/demo.toml`` into ``OUT`` (``demo-output/``), starts an aiosmtpd server on
127.0.0.1 that stores every message it receives in a Maildir, then runs the real commands
one after the other, showing each command line as it goes: import the sample records,
build the feeds, import the sample subscribers, write a preview of the digest and send it.
Nothing leaves the machine.

The demo's links and pictures point at this machine, not at www.kcrush.com:

- the mails' subscription links (preferences, unsubscribe, confirm) at
  ``http://127.0.0.1:PORT``, where ``make serve-demo`` runs ``kcrush-feeds serve`` with the
  demo's signing secret;
- the records' pictures at ``http://127.0.0.1:PORT+1/images/``, where ``make serve-demo``
  also serves ``OUT`` itself (the feeds, the digest preview and the pictures shipped in
  ``examples/images/``). The demo imports a copy of ``examples/records.jsonl`` whose image
  URLs are rewritten so; the examples themselves keep the magazine's URLs.

``python -m kcrush_feeds.demo serve [OUT]`` (``make serve-demo``) starts both servers, and
an SMTP server that keeps the confirmation mail in ``OUT/maildir`` like the demo's, then
prints the links of the demo subscribers and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import functools
import json
import mailbox
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

# The sample pages end on Monday 26 February 2024: the demo runs on the Tuesday after,
# so that week's digest is due and every sample record is in the past.
DEMO_NOW = "2024-02-27T09:00:00-08:00"
DEMO_SECRET = "demo-secret-not-for-production-use"
DEFAULT_PORT = 8080  # serve; the files (feeds, preview, pictures) on the port after it
SHOW_SUBSCRIBERS = 3  # whose links the end of the demo prints


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["serve"]:
        return serve_main(args[1:])
    parser = argparse.ArgumentParser(prog="python -m kcrush_feeds.demo")
    parser.add_argument("examples", nargs="?", default="examples")
    parser.add_argument("out", nargs="?", default="demo-output")
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("KCRUSH_DEMO_PORT") or DEFAULT_PORT),
        help="the port 'make serve-demo' will serve on (the files on the next one)",
    )
    options = parser.parse_args(args)
    return run_demo(Path(options.examples).resolve(), Path(options.out).resolve(), options.port)


def run_demo(examples: Path, out: Path, port: int) -> int:
    """Import, build, preview and send the samples into ``out``; say where to look."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    maildir = out / "maildir"
    smtp_port = _free_port()
    serve_url = f"http://127.0.0.1:{port}"
    files_url = f"http://127.0.0.1:{port + 1}"
    shutil.copytree(examples / "images", out / "images")
    records = out / "records.jsonl"
    _local_pictures(examples / "records.jsonl", records, out / "images", f"{files_url}/images")
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        config = out / "config.toml"
        template = (examples / "demo.toml").read_text(encoding="utf-8")
        config.write_text(
            template.replace("@SMTP_PORT@", str(smtp_port)).replace("@SERVE_URL@", serve_url),
            encoding="utf-8",
        )
        env = {**os.environ, "KCRUSH_FEEDS_NOW": DEMO_NOW, "KCRUSH_SECRET": DEMO_SECRET}
        print(f"Local SMTP server on 127.0.0.1:{smtp_port}, storing mail in {maildir}")
        print(f"Clock pinned to {DEMO_NOW} (KCRUSH_FEEDS_NOW), the day after the newest sample.")
        print(f"The samples' pictures come from {files_url}/images/ (examples/images/).\n")
        steps = [
            ["import", str(records)],
            ["build"],
            ["subscribers", "import", str(examples / "subscribers.csv")],
            ["subscribers", "list"],
            ["preview", "--out", str(out / "preview")],
            ["send"],
            ["send"],  # the second run of the week sends nothing, and says so
            ["status"],
        ]
        for step in steps:
            command = ["kcrush-feeds", "--config", str(config), *step]
            print("$ " + shlex.join(command).replace(str(out) + "/", "demo-output/"))
            done = subprocess.run(
                [sys.executable, "-m", "kcrush_feeds", *command[1:]], env=env, check=False
            )
            print()
            if done.returncode != 0:
                print(f"demo: step failed with exit status {done.returncode}", file=sys.stderr)
                return done.returncode
    finally:
        controller.stop()
    messages = sorted(mailbox.Maildir(maildir, create=False).keys())
    feeds = sorted(p.relative_to(out) for p in (out / "feeds").rglob("*") if p.is_file())
    previews = sorted((out / "preview").glob("*.html"))
    print("Where to look:")
    print(f"  feeds ({len(feeds)} files):   {out / 'feeds'}")
    print(f"  digest preview:      {out / 'preview'}")
    print(f"  delivered mail:      {maildir / 'new'}  ({len(messages)} messages)")
    print()
    print("To open them in a browser, with their pictures, and to try the subscribers'")
    print("preferences and unsubscribe pages (the links in the delivered mail), run:")
    print()
    print("  make serve-demo")
    print()
    print(f"then open {files_url}/feeds/index.html")
    if previews:
        print(f"      and {files_url}/preview/{previews[0].name}")
    print("and, for the demo subscribers (the same links as in their mail):")
    for email, links in demo_links(config, DEMO_SECRET)[:SHOW_SUBSCRIBERS]:
        print(f"  {email}")
        print(f"    preferences: {links['preferences']}")
        print(f"    unsubscribe: {links['unsubscribe']}")
    return 0


def _local_pictures(source: Path, target: Path, images: Path, base: str) -> None:
    """A copy of the sample records whose pictures are the shipped ones, on this machine.

    Each record with an image gets one of ``images`` in turn (their type and real
    length, so the feeds' enclosures are true); its alt text is kept.
    """
    pictures = sorted(images.glob("*.png"))
    lines = []
    n = 0
    for line in source.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record: dict[str, Any] = json.loads(line)
        image = record.get("image")
        if image is not None:
            picture = pictures[n % len(pictures)]
            n += 1
            alt = image.get("alt", "") if isinstance(image, dict) else ""
            record["image"] = {
                "url": f"{base}/{picture.name}",
                "alt": alt,
                "type": "image/png",
                "length": picture.stat().st_size,
            }
        lines.append(json.dumps(record, ensure_ascii=False))
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def demo_links(config: Path, secret: str) -> list[tuple[str, dict[str, str]]]:
    """(address, {"preferences": url, "unsubscribe": url}) for each active demo subscriber."""
    from kcrush_feeds import tokens
    from kcrush_feeds.config import load_config
    from kcrush_feeds.store.db import Store
    from kcrush_feeds.subscriptions.subscribers import iter_subscribers

    loaded = load_config(config)
    base = loaded.require_subscriptions().base_url.rstrip("/")
    with Store.open(loaded.database_path) as store:
        found = list(iter_subscribers(store, status="active"))
    out = []
    for s in found:
        links = {
            purpose: f"{base}/{purpose}?token={tokens.sign(secret.encode(), purpose, s.email)}"
            for purpose in ("preferences", "unsubscribe")
        }
        out.append((s.email, links))
    return out


# --- make serve-demo -------------------------------------------------------------------------


def serve_main(args: list[str]) -> int:
    """Serve the demo's subscription pages and files until Ctrl-C (or SIGTERM)."""
    out = Path(args[0] if args else "demo-output").resolve()
    config = out / "config.toml"
    if not config.is_file():
        print(f"serve-demo: {config} not found: run 'make demo' first", file=sys.stderr)
        return 2
    with config.open("rb") as f:
        data = tomllib.load(f)
    serve = urlsplit(data["subscriptions"]["base_url"])
    port = serve.port or DEFAULT_PORT
    files = ThreadingHTTPServer(
        ("127.0.0.1", port + 1),
        functools.partial(_QuietFiles, directory=str(out)),
    )
    threading.Thread(target=files.serve_forever, daemon=True).start()
    # The confirmation mail of the subscribe form lands in the demo's Maildir too.
    controller = Controller(
        Mailbox(out / "maildir"), hostname="127.0.0.1", port=int(data["smtp"]["port"])
    )
    smtp: Controller | None = controller
    try:
        controller.start()
    except (OSError, RuntimeError) as e:
        print(f"serve-demo: no SMTP server for the confirmation mail: {e}", file=sys.stderr)
        smtp = None
    env = {**os.environ, "KCRUSH_SECRET": DEMO_SECRET}
    env.pop("KCRUSH_FEEDS_NOW", None)
    command = [sys.executable, "-m", "kcrush_feeds", "--config", str(config), "serve"]
    server = subprocess.Popen([*command, "--host", "127.0.0.1", "--port", str(port)], env=env)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    print(f"serve-demo: the subscription pages on http://127.0.0.1:{port}/subscribe")
    files_url = f"http://127.0.0.1:{port + 1}/"
    print(f"serve-demo: the feeds, the digest preview and the pictures on {files_url}")
    for email, links in demo_links(config, DEMO_SECRET)[:SHOW_SUBSCRIBERS]:
        print(f"  {email}: {links['preferences']}")
    print("serve-demo: Ctrl-C stops it", flush=True)
    try:
        while not stop.is_set() and server.poll() is None:
            stop.wait(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
        files.shutdown()
        if smtp is not None:
            smtp.stop()
    return 0


class _QuietFiles(SimpleHTTPRequestHandler):
    """The demo's files; no log line per request (serve's own log stays readable)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
