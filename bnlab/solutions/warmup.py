"""Solution to notebook 00's warm-up exercise."""


def mean(values: list[float]) -> float:
    """The arithmetic mean of a non-empty list of numbers."""
    return sum(values) / len(values)
