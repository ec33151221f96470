"""What the `ccspec` command changes in the interpreter for its own start-up, never on
`import ccspec`: the cyclic garbage collector off until a command runs for long, and no
pydantic plugin discovery. Called by `ccspec.cli.entry.run` and the long-running commands."""

from __future__ import annotations

import gc
import os
import sys
import types
from typing import Any

__all__ = ["collect_again", "skip_pydantic_plugin_discovery"]


_PLUGIN_LOADER = "pydantic.plugin._loader"


def collect_again() -> None:
    """The cyclic garbage collector back on, for a command that runs for long."""
    gc.enable()


def skip_pydantic_plugin_discovery() -> None:
    """In the ccspec command only (never on `import ccspec`): pydantic looks for plugins in
    the entry points of every installed distribution when it builds its first validator,
    and importing importlib.metadata for that and scanning site-packages is a large part of
    each command's start-up. The command's only models are ccspec's own, which use no plugin,
    so pydantic finds a loader that has none. Setting PYDANTIC_DISABLE_PLUGINS (pydantic's
    own switch) leaves pydantic as it is; so does any name of the loader other than
    `get_plugins`, which loads the real module."""
    if _PLUGIN_LOADER in sys.modules or "PYDANTIC_DISABLE_PLUGINS" in os.environ:
        return
    loader = types.ModuleType(_PLUGIN_LOADER, "ccspec: no pydantic plugins in the ccspec command")
    loader.get_plugins = lambda: ()  # type: ignore[attr-defined]
    loader.__dict__["__getattr__"] = _real_plugin_loader  # PEP 562: the module's own fallback
    sys.modules[_PLUGIN_LOADER] = loader


def _real_plugin_loader(name: str) -> Any:
    if name.startswith("__"):  # what the import system asks of any module (`__path__`...)
        raise AttributeError(name)
    import importlib

    sys.modules.pop(_PLUGIN_LOADER, None)
    return getattr(importlib.import_module(_PLUGIN_LOADER), name)
