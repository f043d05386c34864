"""Declared sizes are checked before anything is allocated: a small file that declares a huge
network or array is a one-line error, exit 2, and the process stays under 200 MB."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMORY_MB = 200


def measured(*argv):
    """Run the command from a helper process that reports the command's own peak memory."""
    code = ("import os, subprocess, sys, json\n"
            "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
            "out, err = p.stdout.read(), p.stderr.read()\n"
            "_, status, usage = os.wait4(p.pid, 0)\n"
            "print(json.dumps({'code': os.waitstatus_to_exitcode(status), "
            "'stderr': err.decode(), 'mb': usage.ru_maxrss / 1024}))\n")
    proc = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "netpatch.cli",
                           *map(str, argv)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    return json.loads(proc.stdout)


def assert_refused(result, *fragments):
    assert result["code"] == 2, result
    lines = result["stderr"].strip().splitlines()
    # one line; a text error adds the offending source line and a caret under it
    assert "Traceback" not in result["stderr"], result["stderr"]
    assert len(lines) == 1 or (len(lines) == 3 and lines[2].strip() == "^"), result["stderr"]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result["mb"] < MEMORY_MB, f"peak {result['mb']:.0f} MB"


def test_nnir_declaring_a_billion_inputs(tmp_path):
    path = tmp_path / "huge.nnir"
    path.write_text('netpatch-ir 1\nnetwork "huge"\ninput shape (1000000000) domain box [0.0, 1.0]\n'
                    'linear 1: 1000000000 -> 1\n  weight @W1\n  bias [0.0]\n')
    assert path.stat().st_size < 200
    assert_refused(measured("ir", path), "1,000,000,000 values", "100,000,000")


def keras_h5(path: Path, units: int, n_in: int = 8) -> None:
    """A legacy Keras HDF5 file with one Dense layer whose kernel is declared, never written."""
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"name": "in", "batch_input_shape": [None, n_in]}},
        {"class_name": "Dense", "config": {"name": "d", "units": units, "activation": "linear"}}]}}
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
        group = f.create_group("model_weights").create_group("d")
        group.attrs["weight_names"] = [b"d/kernel:0", b"d/bias:0"]
        group.create_dataset("d/kernel:0", shape=(n_in, units), dtype="float32")
        group.create_dataset("d/bias:0", data=np.zeros(min(units, 10), np.float32)
                             if units > 10 else np.zeros(units, np.float32))


def test_hdf5_with_an_unwritten_huge_kernel(tmp_path):
    path = tmp_path / "huge.h5"
    keras_h5(path, 2_000_000_000)
    assert path.stat().st_size < 100_000
    assert_refused(measured("ir", path), "huge.h5", "16,000,000,000 values")


def test_hdf5_with_an_unwritten_kernel_of_sane_size(tmp_path):
    path = tmp_path / "empty.h5"
    keras_h5(path, 10)
    assert_refused(measured("ir", path), "stores only 0 bytes")


def test_keras_zip_whose_config_inflates_beyond_the_limit(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("config.json", "w", force_zip64=True) as member:
            block = b" " * 2**20
            for _ in range(80):        # 80 MiB of spaces: over the 64 MiB limit
                member.write(block)
        archive.writestr("model.weights.h5", b"")
    assert path.stat().st_size < 1_000_000
    assert_refused(measured("ir", path), "config.json", "larger than")


def test_npz_declaring_a_huge_array(tmp_path):
    header = np.lib.format.header_data_from_array_1_0(np.zeros(1))
    header["shape"] = (10**9, 784)
    path = tmp_path / "huge.npz"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("x.npy", "w") as member:
            np.lib.format.write_array_header_1_0(member, header)
            member.write(b"\0" * 64)
        with archive.open("y.npy", "w") as member:
            np.save(member, np.zeros(3, np.int64))
    result = measured("eval", ROOT / "examples" / "digits" / "digits_mlp.keras", "--data", path)
    assert_refused(result, "huge.npz", "array 'x'")


@pytest.mark.parametrize("content", [os.urandom(300), b"\xff\xfe" + b"netpatch-ir 1"])
def test_random_bytes_as_nnir(tmp_path, content):
    path = tmp_path / "noise.nnir"
    path.write_bytes(content)
    assert_refused(measured("ir", path), "noise.nnir", "not a UTF-8 text file")
