"""Wall-clock seconds per named part of a computation, summed over the spans timed under each name.

The segments step times issue 18's predictions apart from the rest of its work with one of these; the
numbers go to the step's metadata (seconds only) and the benchmark reads them from there.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager


class Stopwatch:
    """Seconds per part name; `part(name)` times a block and adds its seconds to that name."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
