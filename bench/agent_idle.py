"""The real `tetherd`'s footprint when it has nothing to do: resident memory and CPU while idle and connected.

Starts a private Mosquitto and the controller, then one `tetherd` (fake OS tools first on its PATH), waits until it
is online, lets it settle, and samples it for `--seconds`. Prints RSS (and USS, what it holds alone), CPU share
and the number of context switches, which counts the wake-ups. Run by hand: `python -m bench.agent_idle`.
"""

import argparse
import tempfile
import time
from pathlib import Path

import psutil

from bench.fleet import broker
from tests.e2e.harness import Agent, Controller

SETTLE_S = 5.0


def measure(seconds: float) -> str:
    with tempfile.TemporaryDirectory() as tmp, broker("mosquitto", Path(tmp)) as url:
        work = Path(tmp)
        controller = Controller(work, broker_url=url)
        agent = Agent(work, controller.broker_url, "idle-1")
        try:
            controller.wait_online("idle-1")
            time.sleep(SETTLE_S)
            process = psutil.Process(agent.process.popen.pid)
            cpu_before = process.cpu_times()
            switches_before = process.num_ctx_switches()
            started = time.monotonic()
            peak_rss = 0.0
            while time.monotonic() - started < seconds:
                peak_rss = max(peak_rss, process.memory_info().rss / 2**20)
                time.sleep(1.0)
            elapsed = time.monotonic() - started
            cpu_after = process.cpu_times()
            switches_after = process.num_ctx_switches()
            uss = process.memory_full_info().uss / 2**20
            cpu_s = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
            wakeups = (switches_after.voluntary + switches_after.involuntary) - (
                switches_before.voluntary + switches_before.involuntary
            )
            return (
                f"tetherd idle {elapsed:.0f} s: RSS peak {peak_rss:.1f} MB, USS {uss:.1f} MB, "
                f"CPU {cpu_s:.3f} s ({100 * cpu_s / elapsed:.3f}%), {wakeups / elapsed:.1f} context switches/s"
            )
        finally:
            agent.stop()
            controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    print(measure(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
