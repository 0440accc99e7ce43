import os

import pytest

from molgen.io import atomic_output, atomic_write_text, default_cache_root


def test_atomic_write_text_replaces_whole_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old content that is longer\n")
    assert atomic_write_text(path, "new\r\nlines\n") == path
    assert path.read_bytes() == b"new\r\nlines\n"  # newlines written as given
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failed_block_leaves_destination_untouched(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("original")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_output(path) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert path.read_text() == "original"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_destination_checked_before_writing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_text(tmp_path / "missing" / "out.txt", "x")
    with pytest.raises(IsADirectoryError):
        atomic_write_text(tmp_path, "x")


def test_default_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path))
    assert default_cache_root() == tmp_path
    monkeypatch.delenv("MOLGEN_CACHE")
    assert default_cache_root().parts[-2:] == (".cache", "molgen")
