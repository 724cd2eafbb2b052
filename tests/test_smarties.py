"""SMARTIES encoder: checkpoint layout and loading, projection maths, bands, normalisation, registry.

No real weights: tiny random encoders with the official key names, saved with safetensors.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

import foundation_encoders as fe
from foundation_encoders.smarties import (
    TINY_CONFIG,
    SmartiesEncoder,
    WeightsError,
    build_smarties,
    detect_variant,
    smarties_config,
)
from foundation_encoders.spectrum import (
    NORMALISATION_STATS,
    SENTINEL1_BANDS,
    SENTINEL2_L2A_BANDS,
    BandError,
    band_sensor,
    normalise,
    projection_indices,
)
from foundation_encoders.vit import sincos_pos_embed

S2 = list(SENTINEL2_L2A_BANDS)
SIZE = TINY_CONFIG.img_size


def tiny(seed: int = 0, **overrides: object) -> SmartiesEncoder:
    """A tiny encoder with every parameter random (biases and norms too), pos_embed kept fixed."""
    model = build_smarties("smarties-tiny", **overrides)  # type: ignore[arg-type]
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name != "pos_embed":
                p.copy_(torch.randn(p.shape, generator=g) * 0.1 + (1.0 if name.endswith("norm.weight") else 0.0))
    return model


def image(c: int, *, size: int = SIZE, batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, c, size, size, generator=torch.Generator().manual_seed(seed))


def save(model: SmartiesEncoder, path: Path, *, prefix: str = "", extras: bool = False) -> Path:
    tensors = {prefix + k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    if extras:
        d = model.embed_dim
        tensors |= {
            prefix + "decoder_embed.weight": torch.randn(16, d),
            prefix + "mask_token": torch.zeros(1, 1, 16),
            prefix + "decoder_preds.0.weight": torch.randn(256, 16),
            prefix + "head.weight": torch.randn(10, d),
        }
    safetensors.torch.save_file(tensors, str(path))
    return path


def expected_keys(depth: int) -> set[str]:
    """The official encoder key set (reference brief, section 4.2), written out independently."""
    keys = {"cls_token", "pos_embed", "norm.weight", "norm.bias"}
    keys |= {f"spectrum_projection.spectrum_embeds.{k}.proj.{t}" for k in range(17) for t in ("weight", "bias")}
    per_block = [
        "norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
        "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias",
    ]
    keys |= {f"blocks.{i}.{k}" for i in range(depth) for k in per_block}
    return keys


# --- checkpoint layout and loading ----------------------------------------------------------------


def test_roundtrip_ignores_decoder_and_strips_prefix(tmp_path: Path) -> None:
    source = tiny(seed=3)
    path = save(source, tmp_path / "tiny.safetensors", prefix="model.", extras=True)
    target = tiny(seed=4)
    x = image(5)
    assert not torch.equal(source(x, S2[:5]), target(x, S2[:5]))
    result = target.load_weights(path)
    assert sorted(result.ignored) == ["decoder_embed.weight", "decoder_preds.0.weight", "head.weight", "mask_token"]
    assert result.n_loaded == len(source.state_dict()) and not result.pos_embed_regenerated
    with torch.inference_mode():
        assert torch.equal(source(x, S2[:5]), target(x, S2[:5]))
    keys = set(safetensors.torch.load_file(str(path)))
    assert all(f"model.spectrum_projection.spectrum_embeds.{k}.proj.weight" in keys for k in range(17))


def test_vitb_has_official_keys_and_parameter_count() -> None:
    model = build_smarties("smarties-vitb")
    state = model.state_dict()
    assert set(state) == expected_keys(12) and len(state) == 182
    assert sum(p.numel() for p in model.parameters()) == 88_563_456
    assert state["pos_embed"].shape == (1, 197, 768) and not model.pos_embed.requires_grad
    assert state["spectrum_projection.spectrum_embeds.16.proj.weight"].shape == (768, 256)
    assert state["blocks.11.attn.qkv.weight"].shape == (2304, 768)
    with torch.inference_mode():
        assert model(torch.randn(1, 2, 224, 224), ["VV", "VH"]).shape == (1, 768)


def test_vitl_parameter_count_on_meta() -> None:
    with torch.device("meta"):
        model = SmartiesEncoder(smarties_config("smarties-vitl"))
    assert set(model.state_dict()) == expected_keys(24)
    assert sum(p.numel() for p in model.parameters()) == 306_988_032


def test_missing_key_is_named(tmp_path: Path) -> None:
    state = tiny().state_dict()
    del state["blocks.1.mlp.fc2.bias"]
    path = tmp_path / "missing.safetensors"
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    with pytest.raises(WeightsError, match=r"missing keys: blocks\.1\.mlp\.fc2\.bias"):
        tiny().load_weights(path)
    result = tiny().load_weights(path, strict=False)
    assert result.missing == ("blocks.1.mlp.fc2.bias",)


def test_unexpected_key_is_named(tmp_path: Path) -> None:
    state = {k: v.contiguous() for k, v in tiny().state_dict().items()}
    state["blocks.0.ls1.gamma"] = torch.ones(32)
    path = tmp_path / "extra.safetensors"
    safetensors.torch.save_file(state, str(path))
    with pytest.raises(WeightsError, match=r"unexpected keys: blocks\.0\.ls1\.gamma"):
        tiny().load_weights(path)


def test_other_width_names_the_variant(tmp_path: Path) -> None:
    path = save(tiny(embed_dim=48), tmp_path / "wide.safetensors")
    with pytest.raises(WeightsError, match=r"ViT \(D=48, 2 blocks\) but the encoder is smarties-tiny \(D=32"):
        tiny().load_weights(path)


def test_vitl_file_into_small_encoder_suggests_vitl(tmp_path: Path) -> None:
    # Only the layout matters for the check: cls_token's width and the block count of ViT-L.
    fake = {"cls_token": torch.zeros(1, 1, 1024)} | {f"blocks.{i}.norm1.bias": torch.zeros(1) for i in range(24)}
    path = tmp_path / "vitl.safetensors"
    safetensors.torch.save_file(fake, str(path))
    with pytest.raises(WeightsError, match=r"ViT-L \(D=1024, 24 blocks\).*use --encoder smarties-vitl"):
        tiny().load_weights(path)


def test_shape_mismatch_in_one_tensor(tmp_path: Path) -> None:
    path = save(tiny(mlp_ratio=2.0), tmp_path / "mlp2.safetensors")
    with pytest.raises(WeightsError, match=r"blocks\.0\.mlp\.fc1\.weight \(64, 32\) != \(128, 32\)"):
        tiny().load_weights(path)


def test_truncated_file(tmp_path: Path) -> None:
    path = save(tiny(), tmp_path / "full.safetensors")
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or not a safetensors file"):
        tiny().load_weights(cut)
    (tmp_path / "text.safetensors").write_text("not weights")
    with pytest.raises(WeightsError, match="truncated or not a safetensors file"):
        detect_variant(tmp_path / "text.safetensors")


def test_sha256(tmp_path: Path) -> None:
    path = save(tiny(), tmp_path / "w.safetensors")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    tiny().load_weights(path, sha256=digest.upper())
    with pytest.raises(WeightsError, match=f"is {digest}, expected {'0' * 64}"):
        tiny().load_weights(path, sha256="0" * 64)


def test_missing_file_is_both_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="gsumbul/SMARTIES-v1-ViT-B"):
        tiny().load_weights(tmp_path / "nope.safetensors")
    with pytest.raises(WeightsError):
        tiny().load_weights(tmp_path / "nope.safetensors")


def test_pos_embed_for_another_grid_is_regenerated(tmp_path: Path) -> None:
    source = tiny(seed=5)
    path = save(source, tmp_path / "w64.safetensors")
    small = tiny(seed=6, img_size=32)
    assert small.load_weights(path).pos_embed_regenerated
    assert torch.equal(small.pos_embed, sincos_pos_embed(32, 2))
    assert torch.equal(small.blocks[1].mlp.fc1.weight, source.blocks[1].mlp.fc1.weight)


def test_detect_variant(tmp_path: Path) -> None:
    for name, (d, depth, _) in fe.smarties.VARIANTS.items():
        fake = {"module.cls_token": torch.zeros(1, 1, d)}
        fake |= {f"module.blocks.{i}.norm1.bias": torch.zeros(1) for i in range(depth)}
        safetensors.torch.save_file(fake, str(tmp_path / f"{name}.safetensors"))
        assert detect_variant(tmp_path / f"{name}.safetensors") == name
    assert detect_variant(save(tiny(), tmp_path / "tiny.safetensors")) is None


# --- projection and forward -------------------------------------------------------------------------


def test_matmul_conv_and_official_loop_projections_agree() -> None:
    model = tiny()
    x = image(7)
    indices = [3, 16, 0, 3, 9, 14, 10]
    reference = model.project_reference(x, indices)
    assert torch.allclose(model.project(x, indices), reference, atol=1e-5)
    assert torch.allclose(model.project_conv(x, indices), reference, atol=1e-5)
    with torch.inference_mode():
        assert torch.allclose(model(x, indices), model.forward_reference(x, indices), atol=1e-5)


def test_single_band_token_is_scaled_linear_of_row_major_patch() -> None:
    model = tiny().double()  # float64, so the comparison is about the maths, not rounding
    x = image(1, batch=1).double()
    k = 10
    lin = model.spectrum_projection.spectrum_embeds[k].proj
    tokens = model.project(x, [k])
    grid = SIZE // 16
    assert tokens.shape == (1, grid * grid, 32)
    for r in range(grid):
        for c in range(grid):
            patch = x[0, 0, 16 * r : 16 * r + 16, 16 * c : 16 * c + 16].reshape(-1)
            expected = 12 * (lin.weight @ patch + lin.bias)
            torch.testing.assert_close(tokens[0, r * grid + c], expected, atol=1e-10, rtol=0)


def test_band_order_invariance() -> None:
    model = tiny()
    x = image(12)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        a = model(x, S2)
        b = model(x[:, perm], [S2[i] for i in perm])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_tiling_invariance() -> None:
    model = tiny()
    x = image(3)
    bands = ["B04", "B03", "B02"]
    with torch.inference_mode():
        torch.testing.assert_close(model(x, bands), model(x.repeat(1, 4, 1, 1), bands * 4), atol=1e-5, rtol=0)


@pytest.mark.parametrize("bands", [["B08"], ["VV", "VH"], S2, S2 + list(SENTINEL1_BANDS)])
def test_output_shape(bands: list[str]) -> None:
    with torch.inference_mode():
        assert tiny()(image(len(bands), batch=3), bands).shape == (3, 32)


def test_deterministic_in_eval_mode() -> None:
    model = tiny().eval()
    x = image(4)
    with torch.inference_mode():
        assert torch.equal(model(x, S2[:4]), model(x, S2[:4]))


def test_pos_embed_formula() -> None:
    dim, grid = 8, 3
    pe = sincos_pos_embed(dim, grid)
    assert pe.shape == (1, 1 + grid * grid, dim) and torch.all(pe[0, 0] == 0)
    quarter = dim // 4
    for r in range(grid):
        for c in range(grid):
            row = []
            for fn, pos in ((math.sin, c), (math.cos, c), (math.sin, r), (math.cos, r)):
                row += [fn(pos * 10000 ** (-i / quarter)) for i in range(quarter)]
            torch.testing.assert_close(pe[0, 1 + r * grid + c], torch.tensor(row), atol=1e-6, rtol=0)
    assert torch.equal(tiny().pos_embed, sincos_pos_embed(32, 4))


def test_wrong_image_size_and_channel_count() -> None:
    model = tiny()
    with pytest.raises(ValueError, match=r"image is 48x48 px but smarties-tiny expects 64x64: resize it to img_size=64"):
        model(image(2, size=48), ["VV", "VH"])
    with pytest.raises(ValueError, match="x has 2 channels but 3 bands"):
        model(image(2), ["VV", "VH", "B02"])


def test_b10_is_rejected() -> None:
    for b10 in ("B10", "b10", "short_wave_infrared_2", -1):
        with pytest.raises(BandError, match=r"B10 \(cirrus\) has no SMARTIES projection: drop it"):
            projection_indices(["B02", b10])
    with pytest.raises(BandError, match="drop it"):
        tiny()(image(2), ["B09", "B10"])


# --- bands ----------------------------------------------------------------------------------------


def test_band_names_and_aliases() -> None:
    assert projection_indices(S2) == [0, 1, 4, 6, 7, 8, 10, 9, 11, 12, 13, 14]
    aliases = ["B1", "b02", "B08A", "b8a", "vv", "VH", "blue_1", "microwave_2", 5, np.int64(16)]
    assert projection_indices(aliases) == [0, 1, 11, 11, 15, 16, 1, 16, 5, 16]
    assert [band_sensor(b) for b in ("B8A", "vh", "near_infrared_1")] == ["S2", "S1", "S2"]
    with pytest.raises(BandError, match="RGB"):
        band_sensor("red_1")


def test_bad_bands() -> None:
    with pytest.raises(BandError, match=r"unknown band 'B8B'.*Accepted: Sentinel-2 B01"):
        projection_indices(["B8B"])
    with pytest.raises(BandError, match=r"did you mean 'blue_1'"):
        projection_indices(["blu_1"])
    with pytest.raises(BandError, match="out of range"):
        projection_indices([17])
    with pytest.raises(BandError, match="at least one band"):
        projection_indices([])
    with pytest.raises(BandError, match=r"use \['B02'\]"):
        projection_indices("B02")


# --- normalisation --------------------------------------------------------------------------------


def test_normalise_formula_and_nodata() -> None:
    rng = np.random.default_rng(0)
    bands = ["B02", "B8A", "VV"]
    raw = np.stack([rng.uniform(-100, 6000, (2, 5, 5)), rng.uniform(-100, 6000, (2, 5, 5)), rng.uniform(-40, 0, (2, 5, 5))], 1)
    raw[0, 1, 2, 3] = np.nan
    valid = np.ones((2, 5, 5), bool)
    valid[1, 0, 0] = False
    z = normalise(raw, bands, valid)
    assert z.dtype == np.float32 and z.shape == raw.shape
    for c, name in enumerate(("B02", "B8A", "VV")):
        p1, p99, mean, std = NORMALISATION_STATS[name]
        expected = (np.clip((raw[:, c] - p1) / (p99 - p1), 0, 1) - mean) / std
        expected[np.isnan(expected)] = 0
        expected[1, 0, 0] = 0
        np.testing.assert_allclose(z[:, c], expected, atol=1e-5)
    assert z[0, 1, 2, 3] == 0 and np.all(z[1, :, 0, 0] == 0)
    zt = normalise(torch.from_numpy(raw), bands, torch.from_numpy(valid))
    assert isinstance(zt, torch.Tensor) and zt.dtype == torch.float32
    np.testing.assert_allclose(zt.numpy(), z, atol=1e-6)


def test_normalise_errors() -> None:
    with pytest.raises(BandError, match="no pretraining statistics"):
        normalise(np.zeros((1, 4, 4)), ["red_1"])
    with pytest.raises(BandError, match="2 bands were named"):
        normalise(np.zeros((3, 4, 4)), ["B02", "B03"])
    with pytest.raises(ValueError, match="not broadcastable"):
        normalise(np.zeros((2, 4, 4)), ["VV", "VH"], np.ones((3, 3), bool))


# --- registry -------------------------------------------------------------------------------------


def test_get_encoder_unknown_name() -> None:
    with pytest.raises(ValueError, match=r"unknown encoder 'smarties-vitB' \(did you mean 'smarties-vitb'\?\); available: smarties, smarties-vitb, smarties-vitl"):
        fe.get_encoder("smarties-vitB")


def test_register_custom_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fe, "ENCODERS", dict(fe.ENCODERS))

    class Dummy(torch.nn.Module):
        name, embed_dim, img_size = "dummy", 3, 8

    @fe.register_encoder("dummy")
    def build_dummy(weights: object = None, sha256: object = None, **kwargs: object) -> Dummy:
        assert weights == "w.bin" and kwargs == {"scale": 2}
        return Dummy()

    encoder = fe.get_encoder("dummy", weights="w.bin", scale=2)
    assert isinstance(encoder, fe.Encoder) and encoder.embed_dim == 3
    with pytest.raises(ValueError, match="already registered"):
        fe.register_encoder("dummy")(build_dummy)


def test_auto_variant_loads_tiny_weights(tmp_path: Path) -> None:
    source = tiny(seed=8)
    path = save(source, tmp_path / "w.safetensors")
    cfg = {k: getattr(TINY_CONFIG, k) for k in ("embed_dim", "depth", "num_heads", "img_size")}
    encoder = fe.get_encoder("smarties", weights=path, **cfg)
    assert isinstance(encoder, SmartiesEncoder) and encoder.name == "smarties-vitb" and encoder.embed_dim == 32
    x = image(2)
    with torch.inference_mode():
        assert torch.equal(encoder(x, ["VV", "VH"]), source(x, ["VV", "VH"]))
