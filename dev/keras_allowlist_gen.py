"""Regenerates `handlers/validation/scan/keras_allowlist.py` from the installed Keras (run after
upgrading Keras)::

    .venv/bin/python -m dev.keras_allowlist_gen > handlers/validation/scan/keras_allowlist.py

`tests/validation/scan/test_keras_allowlist.py` fails when the committed list differs from what
this writes for the installed Keras.

What it enumerates — what Keras itself registers, not a hand list: every module of `keras.src`
is imported and every class it defines that Keras can serialize into a `.keras` config (a
`KerasSaveable` — layers, models, losses, metrics, optimizers, operations — or an initializer,
regularizer, constraint, learning-rate schedule or dtype policy; with `from_config`) is listed
under the names Keras writes for it: its exported `keras.*` names (every alias in Keras' export
registry) when it has one, else its implementation path (`keras.src.applications.convnext.
LayerScale`: keras.applications' own layers are not exported, and Keras writes them under
`module` = their module). Plus every exported class of the modeling namespaces (`NAMESPACES`:
InputSpec, quantization configs, ...) and the built-in activation, loss and metric functions by name.
Left out, whatever the namespace: `DENIED` (code or file loaders, generic entry points) and
Keras' own `NON_MODELING_APIS`.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# Public namespaces whose exported classes (with `from_config`) are all allowed, whatever their
# base class (InputSpec, quantization configs, OptimizerMap, ...).
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
        *("Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer", "get_file"),
        # Generic entry points that deserialize whatever they are handed, and abstract bases.
        *("deserialize", "serialize", "get", "Function", "Operation", "KerasSaveable"),
        # Quantization configs that reference calibration datasets and tokenizers.
        *("GPTQConfig", "AWQConfig"),
    }
)
# Modules not walked: other backends' code (imports jax/torch; nothing a TensorFlow-backend
# `.keras` names), test utilities, and the torch wrapper (denied anyway).
SKIPPED = ("keras.src.backend.", "keras.src.testing", "keras.src.utils.torch_utils")
SKIPPED_MODULES = frozenset({"keras.src.tree.torchtree_impl"})
# Classes Keras serializes under their implementation module although they are exported (older
# Keras 3 releases wrote these; kept so their files still pass).
INTERNAL_MODULES = ("keras.src.models.functional", "keras.src.models.sequential")


def _walk() -> list[Any]:
    """Every module of keras.src that can be imported here (fails on any unexpected error, so the
    output does not depend on what else happens to be installed)."""
    import keras.src as root

    modules = []
    for info in pkgutil.walk_packages(root.__path__, "keras.src."):
        name = info.name
        leaf = name.rsplit(".", 1)[-1]
        if (
            name.startswith(SKIPPED)
            or name in SKIPPED_MODULES
            or leaf.endswith("_test")
            or leaf.startswith("test_")
        ):
            continue
        modules.append(importlib.import_module(name))
    return modules


def _serializable_bases() -> tuple[type, ...]:
    from keras.src.constraints.constraints import Constraint
    from keras.src.dtype_policies.dtype_policy import DTypePolicy
    from keras.src.initializers.initializer import Initializer
    from keras.src.optimizers.schedules.learning_rate_schedule import LearningRateSchedule
    from keras.src.regularizers.regularizers import Regularizer
    from keras.src.saving.keras_saveable import KerasSaveable

    return (KerasSaveable, Initializer, Regularizer, Constraint, LearningRateSchedule, DTypePolicy)


def generate() -> tuple[frozenset[str], frozenset[str]]:
    """(allowed `module.ClassName` objects, allowed built-in function names)."""
    import keras  # noqa: F401  (registers every exported symbol)
    from keras.src.api_export import REGISTERED_NAMES_TO_OBJS
    from keras.src.saving.serialization_lib import NON_MODELING_APIS

    exported: dict[int, list[str]] = {}
    for name, obj in REGISTERED_NAMES_TO_OBJS.items():
        exported.setdefault(id(obj), []).append(name)
    bases = _serializable_bases()
    objects: set[str] = set()
    for module in _walk():
        for short, obj in vars(module).items():
            own = inspect.isclass(obj) and obj.__module__ == module.__name__
            if not own or not issubclass(obj, bases) or not hasattr(obj, "from_config"):
                continue
            if short in DENIED:
                continue
            names = exported.get(id(obj)) or [f"{module.__name__}.{short}"]
            if module.__name__ in INTERNAL_MODULES:
                names = [*names, f"{module.__name__}.{short}"]
            objects.update(n for n in names if n not in NON_MODELING_APIS)
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
    return frozenset(objects), frozenset(functions)


def render() -> str:
    import keras

    objects, functions = generate()
    lines = [
        f'"""Keras {keras.__version__} built-ins allowed in a `.keras` config (generated; do not edit).',
        "",
        "Every class Keras can write into a `.keras` config, under the names it writes (exported",
        "`keras.*` names, or the implementation module of classes Keras does not export, such as",
        "keras.applications' own layers), minus code and file loaders; see dev/keras_allowlist_gen.py.",
        "Regenerate with `python -m dev.keras_allowlist_gen > handlers/validation/scan/keras_allowlist.py`.",
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
