"""
nanoGPT-style configuration, shared by train.py, sample.py, bench.py and sweep.py.

    python train.py config/finetune_de.py --dataset_tokens=1e6 --device=cpu

Config files are plain Python, executed in order; then --key=value overrides, parsed as Python
literals (a bare word is a string). Every key must already exist as a module-level default of the
calling script and keep its type (an integral float such as 1e6 is accepted for an int key), so a
typo exits with one line that names the key and the closest known one, instead of being ignored.
-h or --help prints the script's docstring and its keys with their defaults.
"""

import ast
import difflib
import os
import sys

from util import fail

def _closest(key, known):
    match = difflib.get_close_matches(key, known, n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""

def _coerce(key, value, default, source):
    """Return value converted to the type of default, or exit naming the key."""
    if default is None or isinstance(value, type(default)) and not (
            isinstance(value, bool) and not isinstance(default, bool)):
        return value
    if isinstance(default, bool):
        pass  # an int is not a bool: fall through to the error
    elif isinstance(default, int) and isinstance(value, float) and value.is_integer():
        return int(value)
    elif isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    fail(f"{source}: {key}={value!r} must be of type {type(default).__name__} "
          f"(default {default!r})")

def configure(config, argv):
    """Apply config files and --key=value overrides in argv to the dict config (a script's
    globals()). Returns {key: where it was last set (the config file, or '--key')} of the keys set
    explicitly, for messages that must say which setting to change."""
    known = [k for k, v in config.items() if not k.startswith('_') and
             isinstance(v, (int, float, bool, str, list, dict, tuple, type(None)))]
    if '-h' in argv or '--help' in argv:
        print((config.get('__doc__') or '').strip() + "\n\nconfig keys (config files, then "
              "--key=value overrides):\n" + '\n'.join(f"  --{k}={config[k]!r}" for k in known
                                                       if k != 'config_keys'))
        sys.exit(0)
    explicit = {}
    for arg in argv:
        if not arg.startswith('--'):
            try:
                code = open(arg).read()
            except OSError as e:
                fail(f"cannot read config file {arg}: {e.strerror}")
            scope = {}
            try:
                exec(compile(code, arg, 'exec'), {}, scope)
            except SyntaxError as e:
                fail(f"config file {arg}, line {e.lineno}: {e.msg}: fix its Python syntax")
            except Exception as e:  # a NameError, say: the file's, not the script's
                fail(f"config file {arg}: {type(e).__name__}: {e}: fix it")
            for key, value in scope.items():
                if key.startswith('_') or callable(value) or type(value).__name__ == 'module':
                    continue
                if key not in known:
                    fail(f"{arg}: unknown config key '{key}'{_closest(key, known)}")
                config[key] = _coerce(key, value, config[key], arg)
                explicit[key] = arg
        else:
            key, sep, text = arg[2:].partition('=')
            if not sep:
                fail(f"override '{arg}' must look like --key=value")
            if key not in known:
                fail(f"unknown config key '{key}'{_closest(key, known)}")
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text  # a bare word, e.g. --device=cpu
            if isinstance(config[key], str) and not isinstance(value, str):
                value = text  # e.g. --out_dir=2024 is a directory name, not a number
            config[key] = _coerce(key, value, config[key], f"--{key}")
            explicit[key] = f"--{key}"
    return explicit

def script_defaults(script='train.py'):
    """A script's config defaults, read from its source without running it (no torch, no
    training): the literal module-level assignments between its first two '# ---' rule lines.
    One source for each default: sweep.py and bench.py take train.py's from here."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), script)
    block = open(path).read().split('\n# ' + '-' * 77 + '\n')[1]
    defaults = {}
    for node in ast.parse(block).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                defaults[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:  # computed at run time (device): not a literal
                defaults[node.targets[0].id] = None
    return defaults
