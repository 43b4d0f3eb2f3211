"""`billing-sync demo`: sandbox, mirror, portal and periodic pull, with neither Redis nor
PostgreSQL; its printed links open the portal for the admin and not for the other contact."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

import requests
from sqlalchemy import text

from sync.db.engine import make_engine
from tests.support.workers import BIN, salesforce, wait_until


def test_given_no_services_when_demo_runs_then_links_work_and_crm_edits_arrive(tmp_path: Path):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("BILLING_SYNC_", "SALESFORCE_"))
    }
    database_url = f"sqlite:///{tmp_path / 'demo.db'}"
    env.update(BILLING_SYNC_DATABASE_URL=database_url, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [str(BIN / "billing-sync"), "demo", "--port", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        while not any("Ctrl-C stops" in line for line in output):
            try:
                lines.get(timeout=90)
            except queue.Empty:
                raise AssertionError("".join(output)) from None
        text_out = "".join(output)
        links = re.findall(r"^\s+(http://\S+/portal/enter\?token=\S+)$", text_out, re.M)
        assert len(links) == 2, text_out
        admin, other = links
        crm = re.search(r"sandbox CRM at (http://\S+?);", text_out).group(1)

        admin_page = requests.get(admin, timeout=10)
        assert admin_page.status_code == 200
        other_page = requests.get(other, timeout=10)
        assert other_page.status_code == 403

        sf = salesforce(crm)
        account = sf.query("SELECT Id FROM Account LIMIT 1")["records"][0]["Id"]
        sf.Account.update(account, {"Name": "Edited during the demo"})
        engine = make_engine(database_url)

        def mirrored() -> bool:
            with engine.connect() as conn:
                name = conn.execute(
                    text("SELECT name FROM accounts WHERE sfid = :s"), {"s": account}
                ).scalar()
            return name == "Edited during the demo"

        assert wait_until(mirrored, timeout=20), "".join(output)
        engine.dispose()

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        reader.join(timeout=10)
        assert process.stdout is not None
        process.stdout.close()
