"""poscuda: protect labeled audio datasets from unauthorized training (PosCUDA).

The Python API (api.py, docs/api.md) is importable from here; it loads on first use, so the
command line starts fast.
"""

__version__ = "0.3.0"

_API = ("keygen", "load_key", "protect_tree", "protect_array", "protect_bytes", "verify_trees", "label_table",
        "label_pattern")


def __getattr__(name):
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'poscuda_cli' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_API))
