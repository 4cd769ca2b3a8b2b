"""rundir.atomic: files written atomically get the mode a plain open() would give them."""

import os
import stat

import pytest

from rundir import atomic


def current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.skipif(not hasattr(os, "fchmod"), reason="POSIX file modes")
def test_atomic_writes_take_the_umask_mode_not_mkstemps_0600(tmp_path):
    atomic.write_text(tmp_path / "status.json", "{}")
    atomic.write_bytes(tmp_path / "model.safetensors", b"\x00" * 8)
    with open(tmp_path / "plain.txt", "w") as f:  # what the user's tools would create
        f.write("x")
    expected = 0o666 & ~current_umask()
    assert expected == atomic.FILE_MODE
    for name in ("status.json", "model.safetensors", "plain.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name
    if current_umask() == 0o022:
        assert expected == 0o644  # readable by the group and others, as a shared results folder needs
