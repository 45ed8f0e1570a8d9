"""Static allowlist walk of a `.keras` archive's `config.json` (no Keras import).

Every dict and list is visited — nested models, wrappers such as TimeDistributed, `compile_config`,
`build_config` — because scanners that only looked at the top-level `layers` were bypassed by
nesting. Anything not recognisably a Keras built-in is rejected (fail closed).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...errors import Rejected
from .keras_allowlist import ALLOWED_OBJECTS, BUILTIN_FUNCTIONS
from .keras_hub_allowlist import KERAS_HUB_OBJECTS

_DATA_CLASSES = frozenset(
    {
        "__keras_tensor__",
        "__tensor__",
        "__numpy__",
        "__bytes__",
        "__ellipsis__",
        "__slice__",
    }
)
_CODE_CLASSES = {
    "Lambda": "keras.lambda_layer",
    "__lambda__": "keras.lambda_layer",
    "TFSMLayer": "keras.tfsmlayer",
    "TorchModuleWrapper": "keras.disallowed_object",
    "JaxLayer": "keras.disallowed_object",
    "FlaxLayer": "keras.disallowed_object",
    "__typespec__": "keras.disallowed_object",
}
# Arguments Keras treats as a file path or URL when given a string (CVE-2025-12058, get_file);
# `merges` and `proto` are KerasHub's tokenizer files (keras_hub_allowlist.py's review).
_PATH_KEYS = frozenset(
    {
        "vocabulary",
        "merges",
        "proto",
        "filepath",
        "file_path",
        "origin",
        "fname",
        "path",
        "cache_dir",
        "cache_subdir",
    }
)
_UNSAFE_SUBSTRINGS = ("keras.config", "enable_unsafe", "get_file", "safe_mode")
_MAX_DEPTH = 200
_SHORT_NAMES = frozenset(name.rpartition(".")[2] for name in ALLOWED_OBJECTS)
_REGISTER = (
    "A trusted custom class can be allowed once it is registered: decorate it with "
    "@keras.saving.register_keras_serializable(package='my_pkg'), save the model again, then set "
    "KERAS_EXTRA_ALLOWED_OBJECTS=my_pkg>ClassName (the name Keras writes) and "
    "KERAS_CUSTOM_OBJECT_MODULES=<the module defining it>, deployed with the function."
)
_HINT = (
    "Save the model with built-in Keras layers only (no Lambda or custom code), or export a "
    "SavedModel and upload that instead."
)


def _allow(registered: str) -> str:
    if registered in KERAS_HUB_OBJECTS:  # KerasHub's own: the opt-in setting, not a hand list
        return (
            f"{registered} is a KerasHub class: set KERAS_HUB=true to allow KerasHub's registered "
            "classes, with the kerashub extra deployed (README: KerasHub (opt-in))."
        )
    return (
        f"If it is trusted, set KERAS_EXTRA_ALLOWED_OBJECTS={registered} and "
        "KERAS_CUSTOM_OBJECT_MODULES=<the module that registers it>, deployed with the "
        "function (the sandbox imports it so that Keras finds the class)."
    )


def scan_keras_config(config: Any, extra_allowed: Iterable[str] = ()) -> None:
    """Raise `Rejected` unless `config` contains only allowlisted Keras built-ins."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise Rejected(
            "config.json of the .keras archive is not a serialized Keras model: expected a JSON "
            f"object with 'class_name', found {type(config).__name__}. Re-save with model.save().",
            code="keras.bad_config",
        )
    _Walker(frozenset(extra_allowed)).visit(config, "config", 0)


class _Walker:
    def __init__(self, extra: frozenset[str]) -> None:
        self._extra = extra

    def visit(self, node: Any, where: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise Rejected(
                f"config.json nests deeper than {_MAX_DEPTH} levels at {where}; a real model "
                "config does not. Re-save the model with model.save().",
                code="keras.bad_config",
            )
        if isinstance(node, dict):
            if "class_name" in node:
                self._check_object(node, where)
            for key, value in node.items():
                self._check_string(str(key), where)
                here = f"{where}.{key}"
                if key in _PATH_KEYS:
                    self._check_path_arg(value, here)
                if key == "name" and isinstance(value, str):
                    self._check_name(value, here)
                self.visit(value, here, depth + 1)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                self.visit(item, f"{where}[{i}]", depth + 1)
        elif isinstance(node, str):
            self._check_string(node, where)
        elif node is not None and not isinstance(node, (bool, int, float)):
            raise Rejected(f"Unexpected value at {where} in config.json.", code="keras.bad_config")

    def _check_object(self, node: dict[str, Any], where: str) -> None:
        class_name = node.get("class_name")
        module = node.get("module")
        registered = node.get("registered_name")
        if (
            not isinstance(class_name, str)
            or not isinstance(module, (str, type(None)))
            or not isinstance(registered, (str, type(None)))
        ):
            raise Rejected(
                f"Malformed object at {where} in config.json: 'class_name' must be a string, "
                "'module' and 'registered_name' strings or null.",
                code="keras.bad_config",
            )
        if class_name in _CODE_CLASSES:
            raise Rejected(
                f"config.json contains a {class_name} object at {where}; it can run or load code "
                f"that the registrar cannot check, so such models are not accepted. {_HINT}",
                code=_CODE_CLASSES[class_name],
            )
        if class_name in _DATA_CLASSES:
            return
        if class_name == "function":
            self._check_function(node, module, where)
            return
        # Keras resolves a registered name before anything else (`get_registered_object`), so a
        # registered custom object is allowed by that name, whatever `module` says.
        if registered is not None and ">" in registered:
            if registered not in self._extra:
                raise Rejected(
                    f"config.json refers to the registered custom object {registered!r} (class "
                    f"{class_name}) at {where}; custom objects need code the registrar does not "
                    f"run unless an operator trusts them. {_HINT} {_allow(registered)}",
                    code="keras.disallowed_object",
                )
            return
        full = f"{module}.{class_name}"
        if module is None:
            allowed = class_name in _SHORT_NAMES  # legacy configs name built-ins without module
        else:
            allowed = full in ALLOWED_OBJECTS or full in self._extra
        if not allowed:
            raise Rejected(
                f"config.json refers to {full!r} at {where}, which is not a Keras built-in "
                "on the registrar's allowlist (exact keras.* names only). "
                f"{_HINT} {_REGISTER}",
                code="keras.disallowed_object",
            )
        if registered not in (None, class_name) and full not in self._extra:
            raise Rejected(
                f"config.json registers {full!r} under the custom name {registered!r} at {where}; "
                f"custom objects need code the registrar does not run. {_HINT}",
                code="keras.disallowed_object",
            )

    def _check_function(self, node: dict[str, Any], module: str | None, where: str) -> None:
        fn = node.get("config")
        if isinstance(fn, str) and ">" in fn:  # a registered function: looked up by this name
            if fn not in self._extra:
                raise Rejected(
                    f"config.json refers to the registered custom function {fn!r} at {where}; "
                    f"custom functions need code the registrar does not run unless an operator "
                    f"trusts them. {_HINT} {_allow(fn)}",
                    code="keras.disallowed_object",
                )
            return
        full = f"{module}.{fn}"
        ok = (module == "builtins" and fn in BUILTIN_FUNCTIONS) or full in ALLOWED_OBJECTS
        if not ok and full not in self._extra:
            raise Rejected(
                f"config.json refers to the function {full!r} at {where}; only Keras "
                f"built-in activations, losses and metrics are allowed. {_HINT}",
                code="keras.disallowed_object",
            )

    @staticmethod
    def _check_string(value: str, where: str) -> None:
        lowered = value.lower()
        for bad in _UNSAFE_SUBSTRINGS:
            if bad in lowered:
                raise Rejected(
                    f"config.json mentions {bad!r} at {where}; model configs must not touch "
                    f"Keras settings or download files. {_HINT}",
                    code="keras.disallowed_object",
                )
        if "://" in value:
            raise Rejected(
                f"config.json contains a URL at {where}; models must not fetch anything at "
                f"load time. {_HINT}",
                code="keras.path_argument",
            )

    @staticmethod
    def _check_path_arg(value: Any, where: str) -> None:
        if isinstance(value, str) and value:
            raise Rejected(
                f"{where} in config.json is the file path or URL {value[:80]!r}; loading would "
                "read it from the registrar's machine. Save lookup vocabularies inline (a list) "
                "so they are stored inside the .keras archive.",
                code="keras.path_argument",
            )

    @staticmethod
    def _check_name(value: str, where: str) -> None:
        if "/" in value or "\\" in value or ".." in value or "\x00" in value:
            raise Rejected(
                f"{where} in config.json is {value[:80]!r}; layer and model names must not "
                "contain '/', '\\' or '..' (they become file names when Keras saves assets). "
                "Rename the layer and save again.",
                code="keras.bad_name",
            )
