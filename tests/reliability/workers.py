"""Blocking helpers for several workers on one PostgreSQL journal: start them, SIGKILL and
replace them, and read the journal for :func:`~tests.reliability.harness.audit` (the multi-worker
crash test and ``make chaos``)."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from tests.reliability.harness import JournalView, load_journal
from tests.support.cli import Result, cli_env, finish, start_cli


async def load_view(uri: str, campaign: str) -> JournalView:
    return await load_journal(uri, campaign)


def run_workers(
    args: Sequence[str],
    workdir: Path,
    *,
    workers: int,
    kills: int,
    rng: random.Random,
    every: tuple[float, float] = (1.0, 3.0),
    timeout: float = 120,
) -> tuple[list[Result], int]:
    """Start ``workers`` runs of ``asyncjobs ARGS``; SIGKILL a random one ``kills`` times (every
    ``every`` seconds, drawn), each replaced at once; then wait for all. The results of those not
    killed, and the kills that landed: none once every worker has finished (the campaign ended)."""
    env = cli_env(workdir)
    running = [start_cli(*args, cwd=workdir, env=env) for _ in range(workers)]
    landed = 0
    for _ in range(kills):
        time.sleep(rng.uniform(*every))
        alive = [process for process in running if process.poll() is None]
        if not alive:
            break
        victim = rng.choice(alive)
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
        landed += 1
        running.remove(victim)
        running.append(start_cli(*args, cwd=workdir, env=env))
    return [finish(process, timeout=timeout) for process in running], landed
