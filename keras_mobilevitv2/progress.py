"""Progress of long loops on stderr: one line updated in place on a terminal, whole lines in a log."""

import math
import sys


class ProgressLine:
    """Call ``update(done, text)`` after each of ``total`` steps and ``close()`` at the end (or use ``with``).

    On a terminal the line is rewritten in place, every ``terminal_every`` steps
    and at the end. When stderr is a file or a pipe (CI, nohup, a notebook's log)
    '\\r' would run the updates together, so a whole line is printed at every
    ``every`` of the way and at the end; with ``in_logs=False`` nothing is printed
    there (for quick checks not worth a log line).
    """

    def __init__(self, total, enabled=True, every=0.1, in_logs=True, terminal_every=1):
        self.total = total
        self.terminal = sys.stderr.isatty()
        self.enabled = enabled and total > 0 and (self.terminal or in_logs)
        self.step = terminal_every if self.terminal else max(1, math.ceil(total * every))
        self.next = self.step
        self.shown = False

    def update(self, done, text):
        if not self.enabled or (done < self.next and done != self.total):
            return
        self.next = (done // self.step + 1) * self.step
        if self.terminal:
            print(f"\r{text}", end="", file=sys.stderr, flush=True)
            self.shown = True
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self):
        if self.shown:
            print(file=sys.stderr, flush=True)
            self.shown = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
