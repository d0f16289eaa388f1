import pytest
import torch

from introspect.codes import code_names, vector_codes


def test_known_codes_of_hand_made_maps():
    fmap = torch.zeros(1, 3, 2, 2)
    fmap[0, 0] = torch.tensor([[0.0, 0.0], [0.0, 4.0]])  # all mass on the last position
    fmap[0, 1] = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # uniform
    # channel 2 is all zero -> centre of mass 0.5
    codes = vector_codes(fmap)
    assert codes.shape == (1, 12)
    mx, mean, std, com = codes[0].reshape(4, 3)
    assert torch.allclose(mx, torch.tensor([4.0, 1.0, 0.0]))
    assert torch.allclose(mean, torch.tensor([1.0, 1.0, 0.0]))
    assert torch.allclose(std, torch.tensor([3.0**0.5, 0.0, 0.0]))  # population std of (0,0,0,4)
    assert torch.allclose(com, torch.tensor([1.0, 0.5, 0.5]))


def test_negative_activations_are_clamped_for_the_centre():
    fmap = torch.tensor([[[[-5.0, 0.0, 1.0]]]])
    assert vector_codes(fmap)[0, 3] == pytest.approx(1.0)


def test_yx_centre_and_dense_passthrough():
    fmap = torch.zeros(2, 1, 3, 5)
    fmap[:, 0, 2, 0] = 1.0  # bottom-left corner
    codes = vector_codes(fmap, com="yx")
    assert codes.shape == (2, 5)
    assert codes[0, 3] == pytest.approx(1.0) and codes[0, 4] == pytest.approx(0.0)
    dense = torch.randn(4, 7)
    assert vector_codes(dense) is dense
    assert code_names(2)[:3] == ["max[0]", "max[1]", "mean[0]"]
    with pytest.raises(ValueError, match="com"):
        vector_codes(fmap, com="xy")


def test_token_tensors_need_a_channel_dim_and_get_the_codes_of_their_channels():
    # (B, N, C) = one input, 3 tokens, 2 channels; channel 0 over the tokens is 1, 2, 3
    tokens = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [3.0, 6.0]]])
    with pytest.raises(ValueError, match="channel_dim=-1") as err:
        vector_codes(tokens)
    assert "(B, N, C)" in str(err.value)
    codes = vector_codes(tokens, channel_dim=-1)
    assert codes.shape == (1, 4 * 2)  # 4 statistics x C channels, not x N tokens
    mx, mean, std, com = codes[0].reshape(4, 2)
    assert torch.allclose(mx, torch.tensor([3.0, 6.0]))
    assert torch.allclose(mean, torch.tensor([2.0, 2.0]))
    assert torch.allclose(std, torch.tensor([(2 / 3) ** 0.5, 8**0.5]))
    # centre of mass over token positions 0, 0.5, 1: (0*1 + .5*2 + 1*3) / 6, and 1
    assert torch.allclose(com, torch.tensor([4 / 6, 1.0]))
    # (B, C, L) is the same map with channels first
    assert torch.equal(vector_codes(tokens.transpose(1, 2), channel_dim=1), codes)
    with pytest.raises(ValueError, match="batch"):
        vector_codes(tokens, channel_dim=0)


def _reference_codes(fmap, com="flat"):
    """The codes by their definition, each statistic one whole-map expression."""
    b, c, h, w = fmap.shape
    flat = fmap.reshape(b, c, h * w)
    mean = flat.mean(-1)
    std = ((flat - mean[..., None]) ** 2).mean(-1).sqrt()
    weights = flat.clamp_min(0)

    def centre(wts, n):
        pos = torch.linspace(0, 1, n, dtype=wts.dtype) if n > 1 else torch.full((1,), 0.5)
        total = wts.sum(-1)
        return torch.where(total > 0, (wts * pos).sum(-1) / total, torch.full_like(total, 0.5))

    if com == "flat":
        coms = [centre(weights, h * w)]
    else:
        wts = weights.reshape(b, c, h, w)
        coms = [centre(wts.sum(-1), h), centre(wts.sum(-2), w)]
    return torch.cat([flat.amax(-1), mean, std, *coms], dim=1)


@pytest.mark.parametrize("com", ["flat", "yx"])
@pytest.mark.parametrize("block_bytes", [None, 4096])
def test_blockwise_codes_match_the_definition(monkeypatch, com, block_bytes):
    # blocks of rows (as the CPU computes them) give the codes of the whole map: post-ReLU
    # images, images with negative values after them (the sums of earlier blocks are made
    # afresh), all-zero and constant channels, a NaN-free 1 x 7 map and 56 x 56 maps
    import introspect.codes as codes_module

    if block_bytes is not None:
        monkeypatch.setattr(codes_module, "_BLOCK_BYTES", block_bytes)
    g = torch.Generator().manual_seed(0)
    for shape in [(12, 20, 9, 11), (3, 5, 1, 7), (4, 16, 56, 56)]:
        x = torch.randn(shape, generator=g)
        x[: shape[0] // 2] = x[: shape[0] // 2].relu()  # later images have negative values
        x[:, 1] = 0.0  # an all-zero channel: centre 0.5, std 0
        x[:, 2] = 0.25  # a constant channel
        for fmap in (x, x.relu()):
            got = vector_codes(fmap, com=com)
            torch.testing.assert_close(got, _reference_codes(fmap, com), rtol=1e-6, atol=1e-6)
            exact = _reference_codes(fmap.double(), com).float()
            torch.testing.assert_close(got, exact, rtol=1e-5, atol=1e-6)
