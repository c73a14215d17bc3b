import statistics


def figure(label: str, samples: list[float], target: str, unit: str = "s") -> str:
    """One printed line: median, spread (min–max) over the samples, and the target."""
    median = statistics.median(samples)
    line = (f"{label}: median {median:.3f} {unit} (min {min(samples):.3f}, max {max(samples):.3f}, "
            f"n={len(samples)}) target {target}")
    print(line, flush=True)
    return line
