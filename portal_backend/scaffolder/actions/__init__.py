"""Scaffolder actions. Every module of this package registers its actions on import.

New actions (``rag_sizing.py``, ``rag_provision.py``, ...) only need to live here and use
``@register``: ``load_actions`` imports the whole package.
"""

from __future__ import annotations

import importlib
import pkgutil

_loaded = False


def load_actions() -> None:
    global _loaded
    if _loaded:
        return
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    _loaded = True
