"""CUDA paths: skipped without a GPU (run them on a GPU machine with `pytest -m gpu`)."""

import numpy as np
import pytest
import torch
from conftest import tiny_config

from masksdm.metrics import roc_auc
from masksdm.model.checkpoint import load_checkpoint
from masksdm.model.inference import predict_logits
from masksdm.model.training import train

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_cuda_training_with_bf16_learns(tiny_workspace, tmp_path):
    result = train(tiny_workspace, tmp_path / "gpu", config=tiny_config(epochs=12, device="cuda"), progress=False)
    assert result.best_val_auc > 0.65
    model, card = load_checkpoint(result.run_dir, device="cuda")
    assert card.metrics["device"].startswith("cuda")


def test_cuda_and_cpu_predictions_agree(tiny_run, tiny_workspace):
    x = tiny_workspace.features("test")
    cpu_model, _ = load_checkpoint(tiny_run, device="cpu")
    gpu_model, _ = load_checkpoint(tiny_run, device="cuda")
    np.testing.assert_allclose(predict_logits(gpu_model, x, precision="fp32"), predict_logits(cpu_model, x), atol=1e-4)


def test_auc_on_the_gpu_matches_the_cpu():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(300, 50)).astype(np.float32)
    labels = rng.random((300, 50)) < 0.2
    on_gpu = roc_auc(torch.from_numpy(scores).cuda(), torch.from_numpy(labels).cuda())
    np.testing.assert_allclose(on_gpu, roc_auc(scores, labels))


def test_collapsed_mask_tokens_on_the_gpu_in_bf16():
    from masksdm.model.network import MaskSDM

    torch.manual_seed(0)
    model = MaskSDM(n_predictors=61, n_species=50, d_embeddings=(16,), d_token=64, n_blocks=2, n_heads=4).cuda().eval()
    x = torch.randn(512, 61, device="cuda")
    keep = torch.rand(512, 61, device="cuda") < 0.4
    with torch.no_grad():
        full = model(x, keep, collapse=False)
        torch.testing.assert_close(model(x, keep), full, atol=1e-4, rtol=1e-4)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            assert (model(x, keep).float() - full).abs().max() < 0.1


def test_shapley_on_the_gpu_matches_the_cpu(tiny_run, tiny_workspace):
    from masksdm.explain.games import global_shapley, local_shapley

    x, y = tiny_workspace.features("test"), tiny_workspace.labels("test")
    cpu_model, card = load_checkpoint(tiny_run, device="cpu")
    gpu_model, _ = load_checkpoint(tiny_run, device="cuda")
    on_gpu, _ = global_shapley(gpu_model, card, x, y, precision="fp32")
    np.testing.assert_allclose(on_gpu.values, global_shapley(cpu_model, card, x, y)[0].values, atol=0.05)
    local = local_shapley(gpu_model, card, x, card.species[:3])  # bf16 by default on CUDA
    assert local.efficiency_gap() < 1e-9
    np.testing.assert_allclose(local.values, local_shapley(cpu_model, card, x, card.species[:3]).values, atol=0.03)


def test_maps_on_the_gpu_match_the_cpu(tiny_run, tmp_path):
    import rasterio
    from affine import Affine

    from masksdm.maps.predict import predict_maps

    transform = Affine(0.25, 0.0, -5.0, 0.0, -0.25, 58.0)
    folder = tmp_path / "rasters"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, values in {"bio_1": rng.normal(10, 4, (80, 120)), "PHIHOX": rng.normal(6, 1, (80, 120))}.items():
        with rasterio.open(folder / f"{name}.tif", "w", driver="GTiff", height=80, width=120, count=1,
                           dtype="float32", crs="EPSG:4326", transform=transform) as dst:
            dst.write(values.astype("float32"), 1)
    maps = {}
    for device in ("cpu", "cuda"):
        model, card = load_checkpoint(tiny_run, device=device)
        predict_maps(model, card, folder, tmp_path / device, layout="multiband", precision="fp32", progress=False)
        with rasterio.open(tmp_path / device / "probability.tif") as src:
            maps[device] = src.read().astype(int)
    assert np.abs(maps["cpu"] - maps["cuda"]).max() <= 1  # one quantisation step at most


def test_smarties_vitb_on_the_gpu_bf16_and_both_projection_forms_agree():
    import torch.nn.functional as F

    from foundation_encoders.smarties import build_smarties
    from foundation_encoders.spectrum import SENTINEL2_L2A_BANDS

    torch.manual_seed(0)
    model = build_smarties("smarties-vitb").cuda()
    x = torch.randn(8, 12, 224, 224, device="cuda")
    with torch.no_grad():
        fp32 = model(x, SENTINEL2_L2A_BANDS)
        reference = model(x, SENTINEL2_L2A_BANDS, reference=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = model(x, SENTINEL2_L2A_BANDS).float()
    assert F.cosine_similarity(fp32, reference).min() > 0.9999  # cuDNN may run the convolution in TF32
    assert F.cosine_similarity(fp32, bf16).min() > 0.99


def test_embedding_pipeline_on_the_gpu_matches_the_cpu(ben_dir):
    import torch.nn.functional as F

    from foundation_encoders.discovery import find_scenes
    from foundation_encoders.smarties import build_smarties
    from masksdm.satellite import embed_locations
    from tests.test_embed import _centres

    torch.manual_seed(0)
    encoder = build_smarties("smarties-tiny")
    scenes = find_scenes(ben_dir / "BigEarthNet-S2-Example")
    lon, lat = _centres(scenes)
    cpu = embed_locations(encoder, scenes, lon, lat, device="cpu", progress=False)
    gpu = embed_locations(encoder, scenes, lon, lat, device="cuda", precision="fp32", progress=False)
    bf16 = embed_locations(encoder, scenes, lon, lat, device="cuda", progress=False)  # bf16 by default on CUDA
    assert gpu.available.all() and bf16.available.all()
    cpu_t = torch.from_numpy(cpu.vectors)
    assert F.cosine_similarity(torch.from_numpy(gpu.vectors), cpu_t).min() > 0.999
    assert F.cosine_similarity(torch.from_numpy(bf16.vectors), cpu_t).min() > 0.98
