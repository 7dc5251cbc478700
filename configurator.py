"""nanoGPT-style configuration for train.py, sample.py, bench.py and sweep.py:
    python train.py config/finetune_de.py --dataset_tokens=1e6 --device=cpu
Config files (plain Python, in order), then --key=value overrides (Python literals; a bare word is
a string). A key must be a module-level default of the script and keep its type (1e6 is fine for an
int), so a typo exits naming the closest known key. -h/--help lists the keys and defaults.
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
    if not isinstance(default, bool) and not isinstance(value, bool):  # an int is not a bool
        if isinstance(default, int) and isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(default, float) and isinstance(value, int):
            return float(value)
    fail(f"{source}: {key}={value!r} must be of type {type(default).__name__} "
          f"(default {default!r})")

def configure(config, argv):
    """Apply argv's config files and overrides to config (a script's globals()); returns {key:
    where it was last set (the config file, or '--key')} for messages that name the setting."""
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
    """A script's config defaults read from its source without running it: the literal
    assignments between its first two '# ---' rule lines (None where computed at run time)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), script)
    block = open(path).read().split('\n# ' + '-' * 77 + '\n')[1]
    defaults = {}
    for node in ast.parse(block).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                defaults[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                defaults[node.targets[0].id] = None
    return defaults
