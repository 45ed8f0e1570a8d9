"""A trusted custom Keras layer, registered the way users do (imported by the sandbox worker
when KERAS_CUSTOM_OBJECT_MODULES names this module)."""

from __future__ import annotations

from typing import Any

import keras

PACKAGE = "RegistrarTest"


@keras.saving.register_keras_serializable(package=PACKAGE)
class Scale(keras.layers.Layer):
    def __init__(self, factor: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x: Any) -> Any:
        return x * self.factor

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "factor": self.factor}
