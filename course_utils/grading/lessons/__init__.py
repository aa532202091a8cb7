"""One module of checks per lesson (lNN_name.py); importing this package registers them all.

Modules are found by name, in lesson order, so adding a lesson's checks needs no edit here.
"""

import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("l") and _info.name[1:3].isdigit():
        importlib.import_module(f"{__name__}.{_info.name}")
