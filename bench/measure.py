"""Runs one command and measures its wall time and memory.

Memory is sampled from /proc/<pid>/status every POLL_S seconds while the command runs:
  * peak RssAnon: the largest private anonymous resident set seen (heap, stacks, private
    buffers). This is the figure that must stay flat in model size: file-backed pages of the
    memory-mapped inputs and outputs are page cache, which the kernel reclaims at will.
  * VmHWM: the kernel's own high-water mark of the whole resident set, anonymous plus
    file-backed (so it includes touched pages of mapped files). Taken from wait4()'s ru_maxrss,
    which is the same counter and is exact even for peaks shorter than the poll interval.
For `sh -c "..."` commands the figures are those of the shell's process only, so baselines
(`cp`) are run directly where possible.
"""

import os
import subprocess
import tempfile
import threading
import time

POLL_S = 0.02


class Result:
    def __init__(self, wall_s, peak_anon_kb, hwm_kb, returncode):
        self.wall_s = wall_s
        self.peak_anon_kb = peak_anon_kb
        self.hwm_kb = hwm_kb
        self.returncode = returncode


def _rss_anon_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def run(command):
    """Runs `command` (a list) to completion; returns a Result. Raises on a non-zero exit,
    quoting the end of the command's stderr (kept in a temporary file, never a pipe, so that a
    chatty command cannot block)."""
    peak = [0]
    done = threading.Event()
    errors = tempfile.TemporaryFile()
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)

    def poll():
        while not done.is_set():
            value = _rss_anon_kb(process.pid)
            if value is not None:
                peak[0] = max(peak[0], value)
            done.wait(POLL_S)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    done.set()
    poller.join()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        errors.seek(0)
        tail = errors.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(map(str, command))} exited with {process.returncode}:\n"
                           f"{tail}")
    errors.close()
    return Result(wall, peak[0], usage.ru_maxrss, process.returncode)


def sync():
    """Flushes dirty pages left by the previous run so it does not bill the next one."""
    subprocess.run(["sync"], check=True)
