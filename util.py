"""
What every script shares, standard library only (the analysis and prepare/ scripts import no
torch): one way to fail, and one way to write the files a program decides from (log.json,
checkpoints, results.json, a dataset's .bin files and meta.json), so that a kill, a full disk or a
power cut never leaves one half-written. Files only people read are written plainly.
"""

import glob
import os
import sys

def fail(msg, code=1):
    """Exit with status code (128 + n for signal n) and one line on stderr, 'error: msg', said by
    rank 0 alone under torchrun (every rank fails alike)."""
    if int(os.environ.get('RANK', 0)) != 0:
        sys.exit(code)
    if code == 1:  # the interpreter prints the message; a caller catching SystemExit can read it
        sys.exit(f"error: {msg}")
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(code)

def check(bad, msg):
    """fail(msg) where bad is true: a check and its one-line message in one statement."""
    if bad:
        fail(msg)

def temp_path(path):
    """Where path is written before its rename: beside it (a rename is atomic within one file
    system), named for the writer's pid so that remove_dead_temps knows whose it is."""
    return f"{path}.{os.getpid()}.tmp"

def commit(paths):
    """Rename each path's closed temp file over it, all fsynced first and the directories after:
    a power cut loses neither the data nor the renames."""
    for path in paths:
        with open(temp_path(path), 'rb+') as f:
            os.fsync(f.fileno())
    for path in paths:
        os.replace(temp_path(path), path)
    for directory in {os.path.dirname(path) or '.' for path in paths}:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

def remove_temps(paths):
    """Remove this process's temp files of paths, where there are any."""
    for path in paths:
        try:
            os.remove(temp_path(path))
        except OSError:
            pass

def atomic_write(writes):
    """writes: [(path, write(f))], f a binary file, renamed only once all are written: an error or
    an interrupt leaves every file as it was, and no temp file."""
    paths = [path for path, _ in writes]
    try:
        for path, write in writes:
            with open(temp_path(path), 'wb') as f:
                write(f)
        commit(paths)
    except BaseException:
        remove_temps(paths)
        raise

def atomic_write_text(path, text):
    """atomic_write of one text file, UTF-8."""
    atomic_write([(path, lambda f: f.write(text.encode('utf-8')))])

def remove_dead_temps(directory):
    """Remove the temp files of writers killed mid-write; a live writer's is left alone."""
    for tmp in glob.glob(os.path.join(directory, '*.*.tmp')):
        pid = tmp.rsplit('.', 2)[-2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, another user's
        try:
            os.remove(tmp)
        except OSError:
            pass
