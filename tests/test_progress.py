"""Progress lines: whole lines in a log, one line updated in place on a terminal."""

import sys

from keras_mobilevitv2.progress import ProgressLine


def _count_to(total, **options):
    with ProgressLine(total, **options) as shown:
        for done in range(1, total + 1):
            shown.update(done, f"step {done}/{total}")


def test_a_log_gets_a_whole_line_at_every_tenth_and_at_the_end(capsys):
    _count_to(25)
    assert capsys.readouterr().err.splitlines() == [f"step {d}/25" for d in (3, 6, 9, 12, 15, 18, 21, 24, 25)]
    _count_to(25, in_logs=False)  # quick checks stay out of logs
    _count_to(25, enabled=False)
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_one_line_rewritten_in_place(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    _count_to(3, in_logs=False)
    assert capsys.readouterr().err == "\rstep 1/3\rstep 2/3\rstep 3/3\n"
