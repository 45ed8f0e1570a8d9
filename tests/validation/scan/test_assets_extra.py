"""assets.extra/: only TF Serving's warmup file, a TFRecord of PredictionLogs for the model's own
signatures (static check, function process)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from handlers.errors import Rejected
from handlers.validation.scan import assets_extra
from handlers.validation.scan.proto import message
from handlers.validation.scan.savedmodel import scan_saved_model_dir
from tests.conftest import make_settings
from tests.validation.scan import savedmodels as sm

pytest.importorskip("tensorflow")
SETTINGS = make_settings()


@pytest.fixture
def model(tmp_path):
    return sm.with_variable(tmp_path / "m")


def _rejected(model) -> str:
    with pytest.raises(Rejected) as info:
        scan_saved_model_dir(model, SETTINGS)
    assert info.value.code == "savedmodel.bad_assets_extra", str(info.value)
    return str(info.value)


def test_valid_warmup_file_passes(model):
    x = np.zeros((1, 4), np.float32)
    sm.write_warmup(model, [sm.predict_log({"x": x}), sm.predict_log({"x": x}, outputs=("y",))])
    scan = scan_saved_model_dir(model, SETTINGS)
    assert "warmup: 2 request(s)" in scan.notes


def test_other_files_are_rejected(model):
    (model / "assets.extra").mkdir()
    (model / "assets.extra" / "notes.txt").write_text("hello")
    assert "notes.txt" in _rejected(model)


def test_corrupt_crc_is_rejected(model):
    path = sm.write_warmup(model, [sm.predict_log({"x": np.zeros((1, 4), np.float32)})])
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the data's masked CRC
    path.write_bytes(bytes(data))
    assert "CRC does not match" in _rejected(model)


def test_truncated_record_is_rejected(model):
    path = sm.write_warmup(model, [sm.predict_log({"x": np.zeros((1, 4), np.float32)})])
    path.write_bytes(path.read_bytes()[:-6])
    assert "truncated" in _rejected(model)


def test_oversized_length_is_refused_before_reading(model):
    import google_crc32c

    length = struct.pack("<Q", assets_extra.MAX_RECORD_BYTES + 1)
    crc = google_crc32c.value(length)
    masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    (model / "assets.extra").mkdir()
    (model / "assets.extra" / assets_extra.WARMUP).write_bytes(length + struct.pack("<I", masked))
    assert "the limit is" in _rejected(model)


def test_not_a_prediction_log_is_rejected(model):
    sm.write_warmup(model, [b"\xff\xff\xff"])
    assert "not a PredictionLog" in _rejected(model)


def test_session_run_request_is_rejected(model):
    log = message("PredictionLog")()
    log.session_run_log.SetInParent()
    sm.write_warmup(model, [log.SerializeToString()])
    assert "SessionRun" in _rejected(model)


def test_request_for_another_signature_is_rejected(model):
    sm.write_warmup(model, [sm.predict_log({"x": np.zeros((1, 4))}, signature="train")])
    assert "signature 'train'" in _rejected(model)


def test_request_with_unknown_inputs_is_rejected(model):
    sm.write_warmup(model, [sm.predict_log({"password": np.zeros((1, 4))})])
    assert "['password']" in _rejected(model)


def test_too_many_records_are_rejected(model, monkeypatch):
    monkeypatch.setattr(assets_extra, "MAX_RECORDS", 2)
    record = sm.predict_log({"x": np.zeros((1, 4), np.float32)})
    sm.write_warmup(model, [record] * 3)
    assert "more than 2 records" in _rejected(model)
