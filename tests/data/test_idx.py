"""IDX reading and writing (n2d2py/data/idx.py): round trips and the errors a bad file gives."""
import gzip

import numpy
import pytest

from n2d2py.data.idx import read_idx, write_idx
from n2d2py.errors import DataError


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype, shape", [("u1", (7, 5, 3)), ("u1", (11,)), ("i4", (4, 2)),
                                          ("f4", (3, 2, 2))])
def test_round_trip(tmp_path, rng, suffix, dtype, shape):
    array = (rng.random(shape) * 200).astype(dtype)
    path = str(tmp_path / f"a-idx{suffix}")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == numpy.dtype(dtype) and back.shape == shape
    numpy.testing.assert_array_equal(back, array)


def test_header_bytes_are_big_endian(tmp_path):
    path = tmp_path / "h"
    write_idx(str(path), numpy.zeros((2, 3, 4), numpy.uint8))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3])
    assert raw[4:16] == bytes([0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4]) and len(raw) == 16 + 24


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_truncated_file_names_path_and_sizes(tmp_path, suffix):
    path = tmp_path / f"images{suffix}"
    write_idx(str(path), numpy.ones((10, 28, 28), numpy.uint8))
    payload = gzip.decompress(path.read_bytes()) if suffix else path.read_bytes()
    cut = payload[:-100]
    path.write_bytes(gzip.compress(cut) if suffix else cut)
    with pytest.raises(DataError) as info:
        read_idx(str(path), expect_ndim=3)
    message = str(info.value)
    assert str(path) in message
    assert f"needs {16 + 7840} bytes, got {16 + 7840 - 100}" in message


def test_bad_magic_and_dimensions(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="bad magic number 0x12340801"):
        read_idx(str(path))
    write_idx(str(path), numpy.zeros(4, numpy.uint8))
    with pytest.raises(DataError, match="1 dimensions, expected 3"):
        read_idx(str(path), expect_ndim=3)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(DataError, match="at least 4 bytes, got 2"):
        read_idx(str(path))


def test_corrupt_gzip_stream(tmp_path):
    path = tmp_path / "y.gz"
    path.write_bytes(gzip.compress(b"\x00" * 1000)[:20])
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(str(path))
