"""Every run records the code and float settings that made it; a run resumes only on the same numerics."""
from __future__ import annotations

import re

import pytest
import torch

import labeldistill
from labeldistill.errors import UserError
from labeldistill.numerics import NUMERICS_VERSION, float32_precision, float_settings
from labeldistill.runs import atomic_write_json, read_json
from labeldistill.runs.provenance import numerics_of, source_sha256, versions


def test_versions_name_the_code():
    v = versions()
    assert v["numerics_version"] == NUMERICS_VERSION
    assert re.fullmatch(r"[0-9a-f]{64}", v["source_sha256"])
    # A git checkout names its commit and whether tracked files differ from it; a copy without git names neither.
    assert (v["git_commit"] is None and v["git_dirty"] is None) or (re.fullmatch(r"[0-9a-f]{40}", v["git_commit"]) and isinstance(v["git_dirty"], bool))


def test_source_hash_follows_the_bytes_not_the_file_order(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root, order in ((a, ("x.py", "sub/y.py")), (b, ("sub/y.py", "x.py"))):
        for name in order:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(f"# {name}\n")
    assert source_sha256(a) == source_sha256(b)
    (b / "x.py").write_text("# x.py changed\n")
    assert source_sha256(a) != source_sha256(b)
    (b / "x.py").write_text("# x.py\n")
    (b / "sub" / "y.py").rename(b / "sub" / "z.py")  # same bytes, another name
    assert source_sha256(a) != source_sha256(b)


def test_numerics_of_records():
    assert numerics_of({"versions": {"numerics_version": 3}}) == 3
    assert numerics_of({"versions": {}}) is None and numerics_of({}) is None


@pytest.mark.parametrize("allow", [False, True])
def test_float32_precision_sets_both_switches_and_restores_them(allow):
    before = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = (not allow), (not allow)
    try:
        with float32_precision(allow) as inside:
            assert torch.backends.cudnn.allow_tf32 is allow and torch.backends.cuda.matmul.allow_tf32 is allow
            assert inside["cudnn_allow_tf32"] is allow and inside["cuda_matmul_allow_tf32"] is allow
        assert torch.backends.cudnn.allow_tf32 is (not allow) and torch.backends.cuda.matmul.allow_tf32 is (not allow)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def test_a_run_records_code_and_floats_and_resumes_only_on_the_same_numerics(mnist_small, tmp_path):
    out = tmp_path / "run"
    labeldistill.distill(f"npz:{mnist_small}", base=10, method="ridge", out=out, progress=False, epochs=2, val_every=1,
                         test_models=2, device="cpu")
    cfg, res = read_json(out / "config.json"), read_json(out / "result.json")
    for rec in (cfg, res):
        assert rec["versions"]["numerics_version"] == NUMERICS_VERSION and "git_commit" in rec["versions"]
        assert rec["float_settings"]["cudnn_allow_tf32"] is False and rec["float_settings"]["cuda_matmul_allow_tf32"] is False
    assert cfg["config"]["allow_tf32"] is False
    # The process's own switches are left as they were.
    assert float_settings()["cudnn_allow_tf32"] == torch.backends.cudnn.allow_tf32

    cfg["versions"]["numerics_version"] = NUMERICS_VERSION - 1
    atomic_write_json(out / "config.json", cfg)
    (out / "result.json").unlink()  # unfinished: a finished run is reported as it is, whatever its numerics
    with pytest.raises(UserError, match=f"numerics version {NUMERICS_VERSION - 1} and this code has {NUMERICS_VERSION}"):
        labeldistill.distill(out=out, resume=True, progress=False)


def test_deterministic_mode_is_recorded_restored_and_changes_no_cpu_result(mnist_small, tmp_path, monkeypatch):
    """``--deterministic`` switches PyTorch's deterministic mode, cuDNN's deterministic algorithms and cuBLAS's workspace
    on for the run only (recorded in config.json), and on a CPU, already deterministic, the run is the same bit for bit."""
    from labeldistill.cli import main

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    runs = {}
    for name, extra in (("default", []), ("deterministic", ["--deterministic"])):
        out = tmp_path / name
        assert main(["distill", "--target", f"npz:{mnist_small}", "--base", "10", "--method", "ridge", "--epochs", "2",
                     "--test-models", "2", "--device", "cpu", "--out", str(out), "--no-progress", *extra]) == 0
        runs[name] = (read_json(out / "config.json"), labeldistill.load(out))
    cfg_d, set_d = runs["deterministic"]
    cfg_0, set_0 = runs["default"]
    assert cfg_d["config"]["deterministic"] is True and cfg_0["config"]["deterministic"] is False
    fs = cfg_d["float_settings"]
    assert fs["deterministic_algorithms"] is True and fs["cudnn_deterministic"] is True and fs["cublas_workspace_config"] == ":4096:8"
    assert cfg_0["float_settings"]["deterministic_algorithms"] is before[0]
    assert torch.equal(set_d.labels, set_0.labels) and set_d.steps == set_0.steps
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic) == before


def test_baseline_cli_records_the_tf32_choice(mnist_small, tmp_path, capsys):
    import json

    from labeldistill.cli import main

    out = tmp_path / "bl"
    assert main(["baseline", "--target", f"npz:{mnist_small}", "--base", "10", "--models", "2", "--allow-tf32", "--device", "cpu",
                 "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["settings"]["allow_tf32"] is True and res["float_settings"]["cudnn_allow_tf32"] is True
    assert res["versions"]["numerics_version"] == NUMERICS_VERSION
    assert read_json(out / "result.json")["float_settings"]["cuda_matmul_allow_tf32"] is True


def test_a_run_records_the_code_it_started_with_not_the_tree_when_it_writes(mnist_small, tmp_path, monkeypatch):
    """The tree is edited while a long run runs (here: while it builds its problem, before it writes a record): its records
    keep naming the code the process started with."""
    import importlib

    from labeldistill.runs import provenance

    run_mod = importlib.import_module("labeldistill.distill.run")
    tree = {"state": "tree-at-start"}
    monkeypatch.setattr(provenance, "source_sha256", lambda package_dir=provenance.PACKAGE_DIR: tree["state"])
    build = run_mod.build_problem

    def edited_meanwhile(*args, **kwargs):
        tree["state"] = "tree-edited-later"
        return build(*args, **kwargs)

    monkeypatch.setattr(run_mod, "build_problem", edited_meanwhile)
    provenance.code_identity.cache_clear()
    try:
        out = tmp_path / "run"
        labeldistill.distill(f"npz:{mnist_small}", base=10, method="ridge", out=out, progress=False, epochs=1, val_every=1,
                             test_models=1, device="cpu")
        assert tree["state"] == "tree-edited-later"
        for name in ("config.json", "result.json"):
            assert read_json(out / name)["versions"]["source_sha256"] == "tree-at-start"
    finally:
        provenance.code_identity.cache_clear()
