"""The MaskSDM network: paper-exact sizes, masking semantics, species restriction."""

import torch

from masksdm.model import MaskSDM, count_parameters


def small(**kw):
    torch.manual_seed(0)
    args = dict(n_predictors=5, n_species=7, d_token=16, n_blocks=2, n_heads=2, n_frequencies=4, dropout=0.0)
    args.update(kw)
    return MaskSDM(**args).eval()


def test_paper_parameter_counts():
    # counts printed by the reference code: 7 blocks 5,381,554; 3 blocks 4,390,578
    assert count_parameters(MaskSDM(n_predictors=61, n_species=12_738, d_embeddings=(256,))) == 5_381_554
    assert count_parameters(MaskSDM(n_predictors=61, n_species=12_738, d_embeddings=(256,), n_blocks=3)) == 4_390_578


def test_output_shape_and_nan_is_masked():
    model = small()
    x = torch.randn(4, 5)
    keep = torch.ones(4, 5, dtype=torch.bool)
    keep[:, 2] = False
    x_nan = x.clone()
    x_nan[:, 2] = float("nan")
    out_masked = model(x, keep)
    out_nan = model(x_nan)
    assert out_masked.shape == (4, 7)
    torch.testing.assert_close(out_masked, out_nan)
    assert torch.isfinite(out_nan).all()


def test_masked_value_does_not_matter_but_visible_does():
    model = small()
    x = torch.randn(3, 5)
    keep = torch.tensor([True, False, True, True, True]).expand(3, 5)
    x2 = x.clone()
    x2[:, 1] += 10.0
    torch.testing.assert_close(model(x, keep), model(x2, keep))
    x3 = x.clone()
    x3[:, 0] += 1.0
    assert not torch.allclose(model(x, keep), model(x3, keep))


def test_all_masked_ignores_the_input():
    model = small()
    none = torch.zeros(2, 5, dtype=torch.bool)
    a = model(torch.randn(2, 5), none)
    torch.testing.assert_close(a[0], a[1])


def test_species_restriction_matches_full_head():
    model = small()
    x = torch.randn(6, 5)
    species = torch.tensor([4, 0, 6])
    torch.testing.assert_close(model(x, species=species), model(x)[:, species])


def test_embedding_token_masking():
    model = small(d_embeddings=(3,))
    x = torch.randn(2, 5)
    e = torch.randn(2, 3)
    hidden = model(x, None, [e], [torch.zeros(2, dtype=torch.bool)])
    torch.testing.assert_close(hidden, model(x, None, [torch.full((2, 3), float("nan"))]))
    torch.testing.assert_close(hidden, model(x, None, None))
    assert not torch.allclose(hidden, model(x, None, [e]))


def test_rejects_bad_sizes():
    import pytest

    with pytest.raises(ValueError, match="divisible"):
        MaskSDM(n_predictors=3, n_species=2, d_token=10, n_heads=3)
    with pytest.raises(ValueError, match="positive"):
        MaskSDM(n_predictors=0, n_species=2)
