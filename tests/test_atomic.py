"""study.atomic: a failed write leaves the previous file and no temporary file behind."""
import pytest

from study.atomic import atomic_open


def test_a_complete_write_replaces_the_file(tmp_path):
    target = tmp_path / "sub" / "state.bin"
    with atomic_open(target) as stream:
        stream.write(b"first")
    with atomic_open(target) as stream:
        stream.write(b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["state.bin"]


def test_a_write_that_fails_midway_keeps_the_previous_file(tmp_path):
    target = tmp_path / "state.txt"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_open(target, "w") as stream:
            stream.write("half of the new")
            raise RuntimeError("killed")
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["state.txt"]
