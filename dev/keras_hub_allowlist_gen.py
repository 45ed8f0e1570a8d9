"""Regenerates `handlers/validation/scan/keras_hub_allowlist.py` from the installed KerasHub (the
opt-in `kerashub` extra; run after upgrading it)::

    python -m dev.keras_hub_allowlist_gen > handlers/validation/scan/keras_hub_allowlist.py

`tests/validation/scan/test_keras_hub_allowlist.py` fails when the committed list differs from
what this writes (it skips where keras_hub is not installed: the extra is opt-in).

What it enumerates — what KerasHub registers, not a hand list: importing `keras_hub` registers
every public class with `keras.saving.register_keras_serializable(package="keras_hub")`, and a
`.keras` file names them by that registered name (`keras_hub>BertBackbone`). Listed: every
registered class Keras can serialize into a config (a `KerasSaveable` — layers, models, tokenizers,
samplers — or an initializer/regularizer/constraint/schedule/dtype policy, with `from_config`).
Registered *functions* are left out (`upload_preset`, `serialize`, `deserialize`, `get`,
`compute_*_vocabulary`/`proto` write files or resolve arbitrary objects) except the reviewed
activations in `FUNCTIONS`.
"""

from __future__ import annotations

import inspect
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PREFIX = "keras_hub>"
# Registered functions a config may name: reviewed one by one (pure tensor math).
FUNCTIONS = frozenset({"keras_hub>gelu_approximate"})

REVIEW = """Security review (why allowing these classes does not let a config read files or fetch):
- Paths and hub handles: the only constructor arguments of these classes that accept a file path
  are the tokenizers' `vocabulary`, `merges` and `proto` (a string is opened as a file). KerasHub's
  `get_config` writes them as null and saves their content under `assets/` inside the archive
  (`load_assets` reads it back from Keras' extraction of the archive), so a string there is never
  what `model.save()` wrote: the scan refuses a string at those keys for every class
  (`keras.path_argument`, keras_config._PATH_KEYS), and refuses every string containing `://`
  (`hf://`, `kaggle://`, `gs://` handles and URLs). A tokenizer that writes its vocabulary
  inline (RWKV7) writes a list, which stays allowed.
- Assets: a tokenizer's `load_assets` parses files from the archive's own `assets/` (SentencePiece
  protos, HF `tokenizers` vocabularies) only in the sandbox worker, under its confinement, like
  every other loader step; the function never parses them.
- Presets: no constructor takes a preset; only `from_preset` downloads (kagglehub, Hugging Face),
  and `from_config` never calls it. The sandbox has no network anyway.
- Code: registered functions other than `FUNCTIONS` are not listed; `Lambda`, `__lambda__` and the
  other code-carrying objects stay refused wherever they are nested (e.g. a sampler or
  `skip_py_fn` argument)."""


def _serializable_bases() -> tuple[type, ...]:
    from keras.src.constraints.constraints import Constraint
    from keras.src.dtype_policies.dtype_policy import DTypePolicy
    from keras.src.initializers.initializer import Initializer
    from keras.src.optimizers.schedules.learning_rate_schedule import LearningRateSchedule
    from keras.src.regularizers.regularizers import Regularizer
    from keras.src.saving.keras_saveable import KerasSaveable

    return (KerasSaveable, Initializer, Regularizer, Constraint, LearningRateSchedule, DTypePolicy)


def generate() -> frozenset[str]:
    """The registered names (`keras_hub>ClassName`) a `.keras` config may use with KERAS_HUB."""
    import keras_hub  # noqa: F401  (its import registers every public class)
    from keras.src.saving.object_registration import GLOBAL_CUSTOM_OBJECTS

    bases = _serializable_bases()
    names = {
        name
        for name, obj in GLOBAL_CUSTOM_OBJECTS.items()
        if name.startswith(PREFIX)
        and inspect.isclass(obj)
        and issubclass(obj, bases)
        and hasattr(obj, "from_config")
    }
    missing = FUNCTIONS - set(GLOBAL_CUSTOM_OBJECTS)
    if missing:
        raise SystemExit(f"reviewed functions no longer registered: {sorted(missing)}")
    return frozenset(names | FUNCTIONS)


def render() -> str:
    import keras_hub

    lines = [
        f'"""KerasHub {keras_hub.__version__} registered names allowed with KERAS_HUB=true (generated; do not edit).',
        "",
        "Every class KerasHub registers that Keras can write into a `.keras` config, by the",
        "registered name Keras writes (`keras_hub>ClassName`); see dev/keras_hub_allowlist_gen.py.",
        "Regenerate with `python -m dev.keras_hub_allowlist_gen > handlers/validation/scan/keras_hub_allowlist.py`.",
        "",
        *REVIEW.splitlines(),
        '"""',
        "",
        f'KERAS_HUB_VERSION = "{keras_hub.__version__}"',
        "",
        "KERAS_HUB_OBJECTS = frozenset(",
        "    {",
        *(f'        "{name}",' for name in sorted(generate())),
        "    }",
        ")",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
