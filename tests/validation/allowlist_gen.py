"""Regenerates `handlers/validation/scan/keras_allowlist.py` from the installed Keras (run after upgrading Keras).

    .venv/bin/python -m tests.validation.allowlist_gen > handlers/validation/scan/keras_allowlist.py

`test_allowlist_matches_installed_keras` fails when the committed list drifts from Keras.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

NAMESPACES = (
    "keras",
    "keras.activations",
    "keras.constraints",
    "keras.dtype_policies",
    "keras.initializers",
    "keras.layers",
    "keras.losses",
    "keras.metrics",
    "keras.models",
    "keras.optimizers",
    "keras.optimizers.schedules",
    "keras.quantizers",
    "keras.regularizers",
)
FUNCTION_NAMESPACES = tuple(f"keras.{m}" for m in ("activations", "losses", "metrics"))
# Built-ins that load code, files or other models: never allowed, whatever the namespace.
DENIED = frozenset(
    {
        *(
            "Lambda",
            "TFSMLayer",
            "TorchModuleWrapper",
            "JaxLayer",
            "FlaxLayer",
            "get_file",
        ),
        # Generic entry points that deserialize whatever they are handed, and abstract bases.
        *("deserialize", "serialize", "get", "Function", "Operation"),
        # Quantization configs that reference calibration datasets and tokenizers.
        *("GPTQConfig", "AWQConfig"),
    }
)
# Classes Keras serializes under their implementation module (not exported by name).
INTERNAL_MODULES = ("keras.src.models.functional", "keras.src.models.sequential")
OPS_PACKAGE = "keras.src.ops"


def generate() -> tuple[frozenset[str], frozenset[str]]:
    """(allowed `module.ClassName` objects, allowed built-in function names)."""
    import keras  # noqa: F401  (registers every exported symbol)
    from keras.src.api_export import REGISTERED_NAMES_TO_OBJS
    from keras.src.ops.operation import Operation
    from keras.src.saving.keras_saveable import KerasSaveable
    from keras.src.saving.serialization_lib import NON_MODELING_APIS

    objects: set[str] = set()
    functions: set[str] = set()
    for name, obj in REGISTERED_NAMES_TO_OBJS.items():
        module, _, short = name.rpartition(".")
        if module not in NAMESPACES or short in DENIED or name in NON_MODELING_APIS:
            continue
        if inspect.isclass(obj) and hasattr(obj, "from_config"):
            objects.add(name)
        elif inspect.isfunction(obj) and module in FUNCTION_NAMESPACES:
            objects.add(name)
            functions.add(short)
    for module_name in INTERNAL_MODULES:
        module = importlib.import_module(module_name)
        for short, obj in vars(module).items():
            own = inspect.isclass(obj) and obj.__module__ == module_name
            if own and issubclass(obj, KerasSaveable):
                objects.add(f"{module_name}.{short}")
    ops = importlib.import_module(OPS_PACKAGE)
    for info in pkgutil.iter_modules(ops.__path__):
        if info.name.endswith("_test"):
            continue
        module_name = f"{OPS_PACKAGE}.{info.name}"
        module = importlib.import_module(module_name)
        for short, obj in vars(module).items():
            own = inspect.isclass(obj) and obj.__module__ == module_name
            if own and short not in DENIED and issubclass(obj, Operation) and obj is not Operation:
                objects.add(f"{module_name}.{short}")
    return frozenset(objects), frozenset(functions)


def render() -> str:
    import keras

    objects, functions = generate()
    lines = [
        f'"""Keras {keras.__version__} built-ins allowed in a `.keras` config (generated; do not edit).',
        "",
        "Regenerate with `python -m tests.validation.allowlist_gen > handlers/validation/scan/keras_allowlist.py`.",
        '"""',
        "",
        "ALLOWED_OBJECTS = frozenset(",
        "    {",
        *(f'        "{name}",' for name in sorted(objects)),
        "    }",
        ")",
        "",
        "BUILTIN_FUNCTIONS = frozenset(",
        "    {",
        *(f'        "{name}",' for name in sorted(functions)),
        "    }",
        ")",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
