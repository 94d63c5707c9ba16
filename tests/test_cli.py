"""The command-line contract: bad input gives at most three clear lines, no traceback, exit != 0."""
from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from labeldistill.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the command in-process (fast) and capture what a terminal would show."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def _no_default_data(monkeypatch):
    monkeypatch.setenv("LABELDISTILL_DATA", "/nonexistent-data-root")


def test_real_entry_point_exits_cleanly(tmp_path):
    """The installed command itself (a subprocess): one-line error, exit status 2."""
    p = subprocess.run([sys.executable, "-m", "labeldistill", "distill", "--target", "nope", "--out", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert p.returncode == 2
    assert_clean_error(p, "Unknown dataset 'nope'")


def assert_clean_error(p: subprocess.CompletedProcess, *needles: str) -> None:
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 3, p.stderr
    assert "Traceback" not in p.stderr
    for n in needles:
        assert n in p.stderr, p.stderr


@pytest.fixture
def bad_files(tmp_path):
    rng = np.random.default_rng(0)
    ok_x = rng.integers(0, 255, (60, 28, 28), dtype=np.uint8)
    files = {
        "float": dict(x=rng.random((60, 28, 28)), y=np.arange(60) % 3),
        "shape": dict(x=rng.integers(0, 255, (60, 28), dtype=np.uint8), y=np.arange(60) % 3),
        "labels": dict(x=ok_x, y=np.arange(60) % 3 - 1),
        "mismatch": dict(x=ok_x, y=np.arange(59) % 3),
        "ok": dict(x=ok_x, y=np.arange(60) % 3),
    }
    out = {}
    for name, arrays in files.items():
        out[name] = tmp_path / f"{name}.npz"
        np.savez(out[name], **arrays)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(out["ok"].read_bytes()[:500])
    out["truncated"] = truncated
    return out


def test_unknown_dataset_lists_known_names(tmp_path):
    p = run_cli("distill", "--target", "nope", "--out", str(tmp_path / "r"))
    assert_clean_error(p, "Unknown dataset 'nope'", "mnist", "cifar10")


def test_missing_catalog_files_name_the_fix(tmp_path):
    p = run_cli("baseline", "--target", "mnist", "--data-root", str(tmp_path))
    assert_clean_error(p, "mnist", "--download")


def test_missing_npz_file(tmp_path):
    p = run_cli("baseline", "--target", f"npz:{tmp_path}/none.npz")
    assert_clean_error(p, "none.npz")


@pytest.mark.parametrize("kind,needle", [("float", "uint8"), ("shape", "x"), ("labels", "range"), ("mismatch", "y"), ("truncated", "truncated.npz")])
def test_bad_array_files(bad_files, kind, needle):
    p = run_cli("baseline", "--target", f"npz:{bad_files[kind]}", "--base", "3")
    assert_clean_error(p, needle)


def test_more_base_examples_than_images(bad_files):
    p = run_cli("baseline", "--target", f"npz:{bad_files['ok']}", "--base", "500")
    assert_clean_error(p, "500")


def test_inner_batch_larger_than_base_set(bad_files, tmp_path):
    p = run_cli("distill", "--target", f"npz:{bad_files['ok']}", "--base", "6", "--inner-batch", "10", "--out", str(tmp_path / "r"))
    assert_clean_error(p, "inner batch 10")


@pytest.mark.parametrize("args,needle", [
    (["--arch", "vgg"], "Unknown model 'vgg'"),
    (["--method", "magic"], "Unknown method 'magic'"),
    (["--base", "abc"], "invalid int value"),
    (["--config", "/nonexistent.toml"], "not found"),
    (["--test-protocol", "dc", "--test-models", "2"], "--test-models counts the paper protocol's test models; --test-protocol dc"),
    (["--test-protocol", "mtt"], "Unknown evaluation protocol 'mtt'"),
])
def test_bad_options(bad_files, tmp_path, args, needle):
    p = run_cli("distill", "--target", f"npz:{bad_files['ok']}", "--out", str(tmp_path / "r"), *args)
    assert_clean_error(p, needle)


def test_unknown_setting_in_config_file(bad_files, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("epochs = 2\nbogus_setting = 1\n")
    p = run_cli("distill", "--target", f"npz:{bad_files['ok']}", "--config", str(cfg), "--out", str(tmp_path / "r"))
    assert_clean_error(p, "bogus_setting")


def test_evaluate_missing_run():
    assert_clean_error(run_cli("evaluate", "/nonexistent/run"), "not found")


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "datasets", "distill", "evaluate", "baseline", "export", "reproduce", "sweep", "report"):
        assert cmd in out


def test_datasets_command_reports_shared_data(shared_data, capsys):
    assert main(["datasets", "--data-root", str(shared_data), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    present = {r["name"]: r["present"] for r in rows}
    assert present["mnist"] and present["cifar10"] and present["kmnist"] and present["digits"]
    # CIFAR-100 has only its test split here: the real dataset is absent, its labelled stand-in present.
    assert not present["cifar100"] and present["cifar100-test-stand-in"]


def test_config_file_and_flags_merge(bad_files, tmp_path):
    """Flags override the TOML file, which overrides the defaults; the run records the result."""
    from labeldistill.cli.common import merge, read_toml
    from labeldistill.distill import DistillConfig

    cfg = tmp_path / "c.toml"
    cfg.write_text('epochs = 7\nmethod = "ridge"\nbase = 12\n')
    c = merge(DistillConfig, read_toml(str(cfg)), {"base": 30, "epochs": None})
    assert (c.epochs, c.method, c.base, c.target_batch) == (7, "ridge", 30, None)  # None: the method's (resolve)
    assert c.resolve("mnist", 1).target_batch == 1024


def test_export_strips_target_paths_and_metrics(tmp_path):
    """A shareable file keeps images, labels, T and the recipe, and nothing about the target side."""
    import torch

    from labeldistill.artifact import DistilledSet, load
    from labeldistill.data import Preprocessing

    run = tmp_path / "run"
    ds = DistilledSet(torch.randn(4, 1, 28, 28), torch.softmax(torch.randn(4, 3), -1), 77,
                      Preprocessing(channels=1, size=28, mean=(0.1,), std=(0.3,)), ["a", "b", "c"],
                      recipe={"arch": "lenet", "head": "linear", "lr": 1e-3, "batch_size": 4, "secret_path": "/private/x"},
                      provenance={"base_dataset": "npz:/private/data/mine.npz", "base_indices": [1, 2, 3, 4],
                                  "target": "npz:/private/data/mine.npz", "base_labels": [0, 1, 2, 0]})
    ds.save(run / "distilled.safetensors")
    p = run_cli("export", str(run), "--out", str(tmp_path / "share.safetensors"))
    assert p.returncode == 0, p.stderr
    raw = (tmp_path / "share.safetensors").read_bytes()
    assert b"/private" not in raw and b"secret_path" not in raw and b"base_labels" not in raw
    back = load(tmp_path / "share.safetensors")
    assert torch.equal(back.labels, ds.labels) and back.steps == 77 and back.provenance["base_dataset"] == "mine.npz"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("command, positional, default_on", [
    ("distill", [], True), ("baseline", [], False), ("evaluate", ["RUN"], False), ("reproduce", ["1"], False),
    ("sweep", ["--target", "mnist", "--base", "10"], False)])
def test_progress_flag_means_the_same_in_every_command(monkeypatch, command, positional, default_on):
    from labeldistill.cli import build_parser
    from labeldistill.cli.common import show_progress

    def shown(*flags: str) -> bool:
        return show_progress(build_parser().parse_args([command, *positional, *flags]))

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a background run's log
    assert shown() is default_on  # a distillation's bar goes into its log; the others' only onto a terminal
    assert shown("--progress", "on") is True and shown("--progress", "on", "--json") is True
    assert shown("--progress", "off") is False and shown("--progress", "auto") is False
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert shown("--progress", "auto") is True and shown("--progress", "auto", "--json") is False
    if command == "distill":
        assert shown("--no-progress") is False
