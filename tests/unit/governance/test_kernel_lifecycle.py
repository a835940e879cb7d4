"""A kernel's runtime threads never outlive the interpreter: a process that exits right after
(or during) kernel calls exits cleanly. CPython 3.11 kills a thread that waits for the interpreter
during finalisation, which aborted the process when that thread was a runtime worker still
delivering a result; the exit hook and the waiting shutdown prevent it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys, airisk

    signing, _ = airisk.generate_ledger_key()
    KERNEL = airisk.open(database_url=sys.argv[1], ledger_signing_key=signing,
                         encryption_keys=airisk.generate_encryption_key("k1"))
    ALICE = airisk.Principal(actor="alice@bank.example", tenant_id="acme", role=airisk.Role.ADMIN, human=True)

    async def main(drop):
        kernel = KERNEL if not drop else airisk.open(database_url="memory:", ledger_signing_key=signing,
                                                      encryption_keys=airisk.generate_encryption_key("k2"))
        calls = [kernel.audit_logger.log_action(actor=ALICE, tenant_id="acme", action="risk.score",
                                                resource_type="loan", resource_id=str(i), correlation_id="c")
                 for i in range(50)]
        if drop == "in-flight":
            del kernel  # futures still pending: the kernel goes away under them
            await asyncio.sleep(0)
            return
        await asyncio.gather(*calls)

    asyncio.run(main(sys.argv[2] if sys.argv[2] != "keep" else None))
    print("clean exit")
    """
)


@pytest.mark.parametrize("mode", ["keep", "drop", "in-flight"])
def test_the_process_exits_cleanly_right_after_kernel_calls(tmp_path, mode):
    for run in range(8):
        url = f"sqlite://{tmp_path / f'{mode}-{run}.db'}"
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, url, mode], capture_output=True, text=True, timeout=120, check=False,
        )
        assert done.returncode == 0 and done.stdout.strip() == "clean exit", (run, done.returncode, done.stderr[-2000:])
