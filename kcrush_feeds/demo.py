"""``make demo``: the whole job on the sample data, against a local SMTP server.

It copies ``examples/demo.toml`` into ``demo-output/``, starts an aiosmtpd server on
127.0.0.1 that stores every message it receives in a Maildir, then runs the real
commands one after the other, showing each command line as it goes:
import the sample records, build the feeds, import the sample subscribers, write a
preview of the digest and send it. Nothing leaves the machine.
"""

from __future__ import annotations

import mailbox
import os
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

# The sample pages end on Monday 26 February 2024: the demo runs on the Tuesday after,
# so that week's digest is due and every sample record is in the past.
DEMO_NOW = "2024-02-27T09:00:00-08:00"


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    examples = Path(args[0] if args else "examples").resolve()
    out = Path(args[1] if len(args) > 1 else "demo-output").resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    maildir = out / "maildir"
    port = _free_port()
    controller = Controller(Mailbox(maildir), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        config = out / "config.toml"
        template = (examples / "demo.toml").read_text(encoding="utf-8")
        config.write_text(template.replace("@SMTP_PORT@", str(port)), encoding="utf-8")
        env = {
            **os.environ,
            "KCRUSH_FEEDS_NOW": DEMO_NOW,
            "KCRUSH_SECRET": "demo-secret-not-for-production-use",
        }
        print(f"Local SMTP server on 127.0.0.1:{port}, storing mail in {maildir}")
        print(f"Clock pinned to {DEMO_NOW} (KCRUSH_FEEDS_NOW), the week after the samples.\n")
        steps = [
            ["import", str(examples / "records.jsonl")],
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
    print("Where to look:")
    print(f"  feeds ({len(feeds)} files):   {out / 'feeds'}  (open index.html in a browser)")
    print(f"  digest preview:      {out / 'preview'}")
    print(f"  delivered mail:      {maildir / 'new'}  ({len(messages)} messages)")
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())
