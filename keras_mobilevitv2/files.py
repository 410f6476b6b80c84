"""Writing outputs safely: never clobber what the user has, never leave half a file."""

import contextlib
import json
import os
import tempfile


class OutputExistsError(FileExistsError):
    """The output path exists and overwriting was not asked for."""


def check_output_path(path, overwrite=False, suffix=None, inputs=()):
    """Refuses an output path that exists (unless ``overwrite``), that is an input, or has the wrong suffix."""
    path = os.fspath(path)
    if suffix and not path.endswith(suffix):
        raise ValueError(f"{path}: the output file must end with {suffix}")
    for input_path in inputs:
        if input_path and os.path.exists(path) and os.path.samefile(path, input_path):
            raise ValueError(f"{path}: the output would overwrite the input file")
    if os.path.exists(path) and not overwrite:
        raise OutputExistsError(f"{path} exists: choose another path or pass --overwrite")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"{path}: the folder {directory} does not exist")
    return path


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path beside ``path``; on success it replaces ``path`` in one step.

    On failure the temporary file is removed and ``path``, if it existed, is untouched.
    The temporary name keeps the suffix (Keras insists on ``.keras``).
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    stem, dot, suffix = name.partition(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{stem}.partial-", suffix=f"{dot}{suffix}", dir=directory)
    os.close(handle)
    os.remove(temporary)  # writers such as Keras refuse to write over an existing file
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text(path, text):
    """Writes ``text`` to ``path`` (UTF-8) atomically."""
    with atomic_output(path) as temporary, open(temporary, "w", encoding="utf-8", newline="") as file:
        file.write(text)


def write_json(path, data):
    """Writes ``data`` as JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=1))


def save_figure(figure, path, dpi=120):
    """Saves a matplotlib figure as a PNG at ``path`` atomically, and closes it."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    with atomic_output(path) as temporary:
        figure.savefig(temporary, dpi=dpi, format="png")
    plt.close(figure)


def save_model(model, path, overwrite=False):
    """Saves a Keras model to ``path`` (``.keras``) atomically; refuses an existing path unless ``overwrite``."""
    check_output_path(path, overwrite, suffix=".keras")
    with atomic_output(path) as temporary:
        model.save(temporary)
    return path
