"""The MaskSDM network: paper-exact sizes, masking semantics, species restriction."""

import pytest
import torch

from masksdm.model.network import MaskSDM, count_parameters


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
    wide = torch.cat([x, e], dim=1)
    hidden = model(wide, torch.tensor([True] * 5 + [False]))
    torch.testing.assert_close(hidden, model(torch.cat([x, torch.full((2, 3), float("nan"))], dim=1)))
    torch.testing.assert_close(hidden, model(x))  # no embedding values: masked
    wide_one_nan = wide.clone()
    wide_one_nan[:, 1 + 5] = float("nan")  # one NaN anywhere in an embedding masks its token
    torch.testing.assert_close(hidden, model(wide_one_nan))
    assert not torch.allclose(hidden, model(wide))
    torch.testing.assert_close(model(wide), model(wide, torch.ones(5, dtype=torch.bool)))  # keep of length P


def test_rejects_wrong_input_widths():
    model = small(d_embeddings=(3,))
    with pytest.raises(ValueError, match="expected \\(batch, 8\\)"):
        model(torch.randn(2, 7))
    with pytest.raises(ValueError, match="one per token"):
        model(torch.randn(2, 8), torch.ones(2, 7, dtype=torch.bool))


def test_rejects_bad_sizes():
    import pytest

    with pytest.raises(ValueError, match="divisible"):
        MaskSDM(n_predictors=3, n_species=2, d_token=10, n_heads=3)
    with pytest.raises(ValueError, match="positive"):
        MaskSDM(n_predictors=0, n_species=2)


@pytest.mark.parametrize("seed", range(5))
def test_collapsed_mask_tokens_match_the_full_sequence(seed):
    torch.manual_seed(seed)
    model = MaskSDM(n_predictors=23, n_species=7, d_embeddings=(5, 3), d_token=16, n_blocks=3, n_heads=4).eval()
    n = 64
    x = torch.randn(n, 23 + 8) * 2
    x[:, :23][torch.rand(n, 23) < 0.15] = float("nan")
    x[torch.rand(n) < 0.3, 25] = float("nan")  # some rows without the first embedding
    keep = torch.rand(n, 25) < torch.rand(n, 1)  # every masking rate from 0 to 1
    keep[0], keep[1] = True, False  # a row with nothing masked by keep, one with everything masked
    x[0] = torch.randn(31)  # and no NaN: the first row has no masked token at all
    with torch.no_grad():
        full = model(x, keep, collapse=False)
        collapsed = model(x, keep, collapse=True)
        default = model(x, keep)
    torch.testing.assert_close(collapsed, full, atol=1e-5, rtol=1e-5)
    assert torch.equal(default, collapsed)  # eval mode collapses by default
    # one shared keep pattern (the Shapley case): no padding at all
    shared = torch.rand(25) < 0.4
    with torch.no_grad():
        torch.testing.assert_close(
            model(x.nan_to_num(), shared.expand(n, -1), collapse=True),
            model(x.nan_to_num(), shared.expand(n, -1), collapse=False),
            atol=1e-5,
            rtol=1e-5,
        )


def test_collapsed_mask_tokens_shorten_the_sequence():
    model = small().eval()
    seen = []
    model.blocks[0].register_forward_hook(lambda module, args, out: seen.append(out.shape[1]))
    x = torch.randn(4, 5)
    keep = torch.tensor([True, False, True, False, False])
    with torch.no_grad():
        model(x, keep.expand(4, -1))
        model(x, torch.ones(4, 5, dtype=torch.bool))
    assert seen == [3, 5]  # 2 visible + 1 collapsed mask token; nothing masked: the full sequence


def test_collapsed_mask_tokens_in_bf16():
    torch.manual_seed(0)
    model = MaskSDM(n_predictors=30, n_species=4, d_token=32, n_blocks=2, n_heads=4).eval()
    x = torch.randn(32, 30)
    keep = torch.rand(32, 30) < 0.3
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        full = model(x, keep, collapse=False).float()
        collapsed = model(x, keep, collapse=True).float()
    assert (collapsed - full).abs().max() < 0.1


def test_training_mode_keeps_the_full_sequence():
    model = small()
    seen = []
    model.blocks[0].register_forward_hook(lambda module, args, out: seen.append(out.shape[1]))
    model.train()
    model(torch.randn(2, 5), torch.zeros(2, 5, dtype=torch.bool))
    assert seen == [5]


@pytest.mark.parametrize("visible", [[0, 3, 7], [], list(range(23)), [2, 23], [23]])
def test_shared_subset_tokenises_only_its_predictors_and_matches(visible):
    torch.manual_seed(0)
    model = MaskSDM(n_predictors=23, n_species=6, d_embeddings=(4,), d_token=16, n_blocks=2, n_heads=4).eval()
    x = torch.randn(40, 27)
    x[:, :23][torch.rand(40, 23) < 0.2] = float("nan")  # NaN inside the subset still means masked
    x[torch.rand(40) < 0.5, 24] = float("nan")  # and a missing embedding too
    keep = torch.zeros(24, dtype=torch.bool)
    keep[visible] = True
    seen = []
    model.tokenizer.register_forward_hook(lambda module, args, out: seen.append(out.shape[1]))
    with torch.no_grad():
        shared = model(x, keep)
        full = model(x, keep.expand(40, -1), collapse=False)
    torch.testing.assert_close(shared, full, atol=1e-5, rtol=1e-5)
    assert seen[0] == len([v for v in visible if v < 23])  # the other predictors were never tokenised
