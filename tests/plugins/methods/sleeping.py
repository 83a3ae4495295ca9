"""A method that hangs in its trial's own thread (as a plugin waiting on a lock or a network forever):
its trial must be ended at its wall-clock budget and recorded as a timeout."""
import time
from dataclasses import dataclass

from sparsebench import Method, register_method


@register_method("test-hangs")
@dataclass
class Hangs(Method):
    when, criterion, paper = "init", "none", "—"
    seconds: float = 3600.0

    def run(self, ctx):
        time.sleep(self.seconds)
