"""What every script in scripts/ shares for its bad-input paths (standard library only, so the
scripts can check their arguments and files before importing PyTorch or matplotlib): a missing
file, a missing directory, a bad argument or a missing module prints one line,
`<script>: error: <what>`, on stderr and exits with status 2, without a traceback."""
import argparse
import importlib.util
import os
import shutil
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(SCRIPTS)
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = [f"{split}-{kind}-idx{dims}-ubyte.gz" for split in ("train", "t10k")
                       for kind, dims in (("images", 3), ("labels", 1))]


def program():
    return os.path.basename(sys.argv[0]) or "python"


def fail(message, status=2):
    """Prints `<script>: error: <message>` as one line on stderr and exits with `status`."""
    print(f"{program()}: error: {' '.join(str(message).split())}", file=sys.stderr)
    sys.exit(status)


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line (the message and where to find the usage)."""

    def error(self, message):
        fail(f"{message} (usage: {self.prog} --help)")


def _int_at_least(text, least):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, not {value}")
    return value


def positive_int(text):
    """argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text):
    """argparse type: an integer >= 0 (a seed)."""
    return _int_at_least(text, 0)


def _require_path(path, hint, is_kind, kind):
    """Fails unless `path` exists and `is_kind(path)`; returns it."""
    if not os.path.exists(path):
        fail(f"{path} does not exist" + (f" ({hint})" if hint else ""))
    if not is_kind(path):
        fail(f"{path} is not a {kind}")
    return path


def require_file(path, hint=""):
    """Fails unless `path` is an existing file; returns it."""
    return _require_path(path, hint, os.path.isfile, "file")


def require_directory(path, hint=""):
    """Fails unless `path` is an existing directory; returns it."""
    return _require_path(path, hint, os.path.isdir, "directory")


def require_executable(path, hint="make build writes it"):
    """Fails unless `path` is an executable file (the fedtrain binary) or a command on PATH; returns it."""
    if os.sep not in path and not os.path.exists(path) and shutil.which(path):
        return path
    require_file(path, hint)
    if not os.access(path, os.X_OK):
        fail(f"{path} is not executable")
    return path


def require_fashion_mnist():
    """Fails unless the four Fashion-MNIST IDX files are where torch_lenet5 reads them."""
    for name in FASHION_MNIST_FILES:
        require_file(os.path.join(FASHION_MNIST, name), "make deps installs the Debian package dataset-fashion-mnist")


def require_modules(*names, hint=""):
    """Fails unless this Python can import every module in `names` (checked without importing them)."""
    missing = []
    for name in names:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    if missing:
        fail(f"{sys.executable} cannot import {', '.join(missing)}" + (f" ({hint})" if hint else ""))


def read_json(path, keys=()):
    """The JSON object in `path`, checked to hold `keys`; one line and exit 2 if it is missing or
    malformed."""
    import json
    require_file(path)
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        fail(f"{path}: {error}")
    if not isinstance(value, dict):
        fail(f"{path}: not a JSON object")
    absent = [key for key in keys if key not in value]
    if absent:
        fail(f"{path}: no {', '.join(absent)}")
    return value


def read_json_lines(path, keys=()):
    """The JSON objects of `path`, one a line (blank lines skipped), each checked to hold `keys`;
    one line and exit 2 if the file is missing or a line is malformed."""
    import json
    require_file(path)
    rows = []
    try:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as error:
                    fail(f"{path}, line {number}: {error}")
                if not isinstance(row, dict):
                    fail(f"{path}, line {number}: not a JSON object")
                absent = [key for key in keys if key not in row]
                if absent:
                    fail(f"{path}, line {number}: no {', '.join(absent)}")
                rows.append(row)
    except (OSError, UnicodeDecodeError) as error:
        fail(f"{path}: {error}")
    return rows
