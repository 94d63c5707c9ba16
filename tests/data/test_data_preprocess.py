import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labeldistill.data import Preprocessing
from labeldistill.data import preprocess as prep_mod
from labeldistill.errors import DataError, UserError


def test_apply_matches_hand_computation_grey():
    x = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)  # 1×2×2
    p = Preprocessing(1, None, (0.5,), (0.25,))
    out = p.apply(x)
    expected = (x.astype(np.float64) / 255 - 0.5) / 0.25
    assert out.dtype == torch.float32 and out.shape == (1, 1, 2, 2)
    np.testing.assert_allclose(out[0, 0].numpy(), expected[0], rtol=1e-6)


def test_apply_colour_per_channel_and_channels_last():
    x = np.zeros((2, 4, 4, 3), dtype=np.uint8)
    x[..., 0], x[..., 1], x[..., 2] = 10, 20, 30
    p = Preprocessing(3, 4, (0.1, 0.2, 0.3), (0.5, 0.25, 0.125))
    out = p.apply(torch.from_numpy(x))
    for c, (v, m, s) in enumerate(zip((10, 20, 30), p.mean, p.std, strict=True)):
        assert torch.allclose(out[:, c], torch.full((2, 4, 4), (v / 255 - m) / s))


def test_grey_to_colour_repeats_channel():
    x = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    out = Preprocessing(3, None, (0.0,) * 3, (1.0,) * 3).apply(x)
    assert out.shape == (2, 3, 3, 3)
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert torch.allclose(out[:, 0], torch.from_numpy(x).float() / 255)


def test_colour_to_grey_uses_bt601_luma():
    x = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    x[..., 0], x[..., 1], x[..., 2] = 200, 100, 50
    out = Preprocessing(1, None, (0.0,), (1.0,)).apply(x)
    assert out.shape == (1, 1, 2, 2)
    assert torch.allclose(out, torch.full_like(out, (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255))


def test_n_h_w_1_is_greyscale():
    x = np.full((3, 5, 5, 1), 255, dtype=np.uint8)
    assert torch.allclose(Preprocessing(1, None, (0.0,), (1.0,)).apply(x), torch.ones(3, 1, 5, 5))


def test_resize_matches_torch_interpolate_and_keeps_constants():
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    out = Preprocessing(1, 14, (0.0,), (1.0,)).apply(x)
    ref = F.interpolate(
        torch.from_numpy(x).float().div(255).unsqueeze(1),
        size=(14, 14),
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )
    assert torch.allclose(out, ref, atol=1e-6)
    const = Preprocessing(3, 32, (0.0,) * 3, (1.0,) * 3).apply(np.full((1, 8, 8), 128, np.uint8))
    assert const.shape == (1, 3, 32, 32) and torch.allclose(const, torch.full_like(const, 128 / 255), atol=1e-6)


def test_chunking_gives_same_result(monkeypatch):
    x = np.random.default_rng(1).integers(0, 256, (25, 6, 6, 3), dtype=np.uint8)
    p = Preprocessing(1, 4, (0.2,), (0.3,))
    whole = p.apply(x)
    monkeypatch.setattr(prep_mod, "CHUNK", 7)
    assert torch.allclose(p.apply(x), whole)


def test_denormalise_inverts_apply():
    x = np.random.default_rng(2).integers(0, 256, (4, 5, 5, 3), dtype=np.uint8)
    p = Preprocessing(3, None, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    back = p.denormalise(p.apply(x))
    assert torch.allclose(back, torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255, atol=1e-6)
    assert p.denormalise(p.apply(x)[0]).shape == (3, 5, 5)


def test_to_dict_roundtrip_is_json_able():
    import json

    p = Preprocessing(3, 32, (0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    d = json.loads(json.dumps(p.to_dict()))
    assert Preprocessing.from_dict(d) == p
    q = Preprocessing(1, None, (0.1307,), (0.3081,))
    assert Preprocessing.from_dict(q.to_dict()) == q


def test_measured_normalisation_gives_zero_mean_unit_std():
    x = np.random.default_rng(3).integers(0, 200, (50, 7, 7, 3), dtype=np.uint8)
    p = Preprocessing.measured(x, 3, None)
    out = p.apply(x)
    assert torch.allclose(out.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(out.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)
    flat = Preprocessing.measured(np.full((3, 4, 4), 7, np.uint8), 1, None)
    assert flat.std == (1.0,)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(channels=2, size=28, mean=(0.0, 0.0), std=(1.0, 1.0)),
        dict(channels=1, size=0, mean=(0.0,), std=(1.0,)),
        dict(channels=1, size=28, mean=(0.0, 0.1), std=(1.0,)),
        dict(channels=1, size=28, mean=(0.0,), std=(0.0,)),
    ],
)
def test_bad_preprocessing_is_a_user_error(kwargs):
    with pytest.raises(UserError):
        Preprocessing(**kwargs)


@pytest.mark.parametrize("d", [None, {"channels": 1}, {"channels": 1, "size": 2, "mean": 0.1, "std": [1.0]}])
def test_from_dict_rejects_bad_dicts(d):
    with pytest.raises(UserError):
        Preprocessing.from_dict(d)


@pytest.mark.parametrize(
    "x", [np.zeros((2, 4, 4), np.float32), np.zeros((4, 4), np.uint8), np.zeros((2, 3, 4, 4), np.uint8)]
)
def test_apply_rejects_bad_images(x):
    with pytest.raises(DataError):
        Preprocessing(1, None, (0.0,), (1.0,)).apply(x)
