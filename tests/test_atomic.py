"""centerclip.util.atomic: a destination gets the writer's complete output or stays as it was."""

import json
import os
import subprocess
import zipfile
import sys
from pathlib import Path

import pytest

from centerclip.util import atomic


def _failing_writer(tmp: Path) -> None:
    tmp.write_text("half written")
    raise RuntimeError("writer died")


def _hidden_and_temporary(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_failing_writer_leaves_no_destination_and_no_temporary(tmp_path):
    dst = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError, match="writer died"):
        with atomic.path(dst) as tmp:
            _failing_writer(tmp)
    assert not dst.exists()
    assert _hidden_and_temporary(dst.parent) == []


def test_interrupt_also_removes_the_temporary(tmp_path):
    dst = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic.path(dst) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_existing_destination_survives_a_failed_rewrite(tmp_path):
    dst = tmp_path / "out.json"
    atomic.write_json({"a": 1}, dst)
    before = dst.read_bytes()
    with pytest.raises(RuntimeError):
        with atomic.path(dst) as tmp:
            _failing_writer(tmp)
    assert dst.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_success_renames_onto_destination_and_creates_parents(tmp_path):
    dst = tmp_path / "a" / "b" / "out.txt"
    atomic.write_text("old\n", dst)
    atomic.write_text("new\n", dst)
    assert dst.read_text() == "new\n"
    assert [p.name for p in dst.parent.iterdir()] == ["out.txt"]


def test_temporary_keeps_the_suffix_is_hidden_and_beside_the_destination(tmp_path):
    dst = tmp_path / "figure.pdf"
    with atomic.path(dst) as tmp:
        assert tmp.parent == dst.parent
        assert tmp.suffix == ".pdf"
        assert tmp.name.startswith(".") and tmp.name != dst.name
        assert str(os.getpid()) in tmp.name
        tmp.write_bytes(b"%PDF")
    assert dst.read_bytes() == b"%PDF"


def test_temporary_without_suffix_when_asked(tmp_path):
    tmp = atomic.temporary_name(tmp_path / "last.pt", keep_suffix=False)
    assert tmp.name.startswith(".last.pt.tmp") and tmp.suffix != ".pt"


def test_text_json_yaml_bytes_formats(tmp_path):
    atomic.write_text("héllo\n", tmp_path / "t.txt")
    assert (tmp_path / "t.txt").read_bytes() == "héllo\n".encode("utf-8")
    atomic.write_json({"b": 1, "a": [1, 2]}, tmp_path / "j.json")
    assert (tmp_path / "j.json").read_text() == json.dumps({"b": 1, "a": [1, 2]}, indent=2) + "\n"
    atomic.write_yaml({"z": 1, "a": {"y": 2, "b": 3}}, tmp_path / "y.yaml")
    assert (tmp_path / "y.yaml").read_text() == "z: 1\na:\n  y: 2\n  b: 3\n"  # key order kept
    atomic.write_bytes(b"\x00\x01", tmp_path / "b.bin")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


def test_save_torch_round_trips_and_does_not_depend_on_the_pid(tmp_path):
    torch = pytest.importorskip("torch")
    atomic.save_torch({"w": torch.arange(3)}, tmp_path / "last.pt")
    assert torch.equal(torch.load(tmp_path / "last.pt")["w"], torch.arange(3))
    # torch names the archive's inner folder after the file it writes: the temporary name must not
    # reach the file, or the same checkpoint would differ from process to process
    folders = {n.split("/")[0] for n in zipfile.ZipFile(tmp_path / "last.pt").namelist()}
    assert not any("tmp" in f for f in folders), folders


def test_importing_atomic_does_not_import_torch():
    code = "import centerclip.util.atomic, sys; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_paper_figure_png_and_pdf_appear_together_or_not_at_all(tmp_path, monkeypatch):
    from centerclip.paper import figures as paper_figures

    fig = paper_figures.plt.figure()
    savefig = fig.savefig

    def png_only(path, format, **kwargs):
        if format == "pdf":
            raise RuntimeError("pdf backend died")
        savefig(path, format=format, **kwargs)

    monkeypatch.setattr(fig, "savefig", png_only)
    with pytest.raises(RuntimeError, match="pdf backend died"):
        paper_figures._save(fig, tmp_path / "f.png", tmp_path / "f.pdf")
    assert list(tmp_path.iterdir()) == []
    paper_figures.plt.close(fig)


def test_a_killed_writers_temporary_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from centerclip.util import atomic

    dst = tmp_path / "frames.h5"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()  # a pid that has exited
    stale = tmp_path / f".frames.h5.tmp{dead}.h5"
    stale.write_bytes(b"x" * 1000)  # what a SIGKILLed cache build leaves
    live = tmp_path / f".frames.h5.tmp{os.getppid()}.h5"  # a running process's: left alone
    live.write_bytes(b"y")
    atomic.write_bytes(b"done", dst)
    assert dst.read_bytes() == b"done" and not stale.exists() and live.exists()
