import statistics
import threading
import time


def figure(label: str, samples: list[float], target: str, unit: str = "s", digits: int = 3) -> str:
    """One printed line: median, spread (min–max) over the samples, and the target."""

    def shown(value: float) -> str:
        return f"{value:,.{digits}f}"

    line = (
        f"{label}: median {shown(statistics.median(samples))} {unit} (min {shown(min(samples))}, "
        f"max {shown(max(samples))}, n={len(samples)}) target {target}"
    )
    print(line, flush=True)
    return line


def on_threads(work) -> float:
    """Seconds for the callables in `work`, each on its own thread, to finish."""
    threads = [threading.Thread(target=job) for job in work]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started
