import torch
import pytest

from msd_core.data import Collator, make_view, mean_fill
from msd_core.errors import ConfigError
from tests.conftest import tiny_model


def test_drop_leaves_the_modality_tokens_out(synthetic3, batch3):
    model = tiny_model(synthetic3)
    full_tokens, _ = model.embed(batch3)
    v = make_view(batch3, ["text", "tabular"], "drop")
    assert v.modalities == ["text", "tabular"]
    tokens, mask = model.embed(v)
    n_image_tokens = model.encoders["image"](batch3.values["image"]).shape[1]
    assert tokens.shape[1] == full_tokens.shape[1] - n_image_tokens
    assert mask.shape == tokens.shape[:2]


def test_mask_keeps_shapes_and_blanks_content(batch3):
    v = make_view(batch3, ["tabular"], "mask")
    for m in batch3.modalities:
        assert v.values[m].shape == batch3.values[m].shape
    assert torch.count_nonzero(v.values["image"]) == 0
    text = v.values["text"]
    real = batch3.token_mask["text"] & ~batch3.special_mask["text"]
    assert (text[real] == batch3.mask_token_id).all()
    assert torch.equal(text[batch3.special_mask["text"]], batch3.values["text"][batch3.special_mask["text"]])
    assert torch.equal(v.values["tabular"], batch3.values["tabular"])


@pytest.mark.parametrize("removal", ["drop", "mask", "mean"])
def test_output_on_a_view_ignores_the_removed_content(synthetic3, batch3, removal):
    model = tiny_model(synthetic3)
    collator = Collator(synthetic3.modalities)
    fill = mean_fill([batch3], collator.text_batch("look at this"))
    altered = make_view(batch3, ["image", "text", "tabular"])  # a copy we can change
    altered.values = dict(altered.values)
    altered.values["image"] = torch.randn_like(batch3.values["image"])
    with torch.no_grad():
        a = model(make_view(batch3, ["text", "tabular"], removal, fill=fill))
        b = model(make_view(altered, ["text", "tabular"], removal, fill=fill))
        c = model(batch3)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert not torch.allclose(a, c, atol=1e-4)  # the image did matter to the full view


def test_per_example_absence_equals_drop(synthetic3, batch3):
    """Modality dropout masks an example's tokens; the logits equal the dropped view's."""
    model = tiny_model(synthetic3)
    masked = make_view(batch3, batch3.modalities)
    masked.present = dict(masked.present)
    masked.present["image"] = torch.zeros(len(batch3), dtype=torch.bool)
    with torch.no_grad():
        torch.testing.assert_close(model(masked), model(make_view(batch3, ["text", "tabular"], "drop")),
                                   rtol=1e-5, atol=1e-5)


def test_swap_gives_every_example_another_examples_content(batch3):
    g = torch.Generator().manual_seed(0)
    v = make_view(batch3, ["text", "tabular"], "swap", generator=g)
    imgs, orig = v.values["image"], batch3.values["image"]
    for i in range(len(batch3)):
        matches = [j for j in range(len(batch3)) if torch.equal(imgs[i], orig[j])]
        assert matches and i not in matches
    assert torch.equal(v.values["text"], batch3.values["text"])
    v2 = make_view(batch3, ["text", "tabular"], "swap", generator=torch.Generator().manual_seed(0))
    assert torch.equal(v2.values["image"], imgs)


def test_mean_uses_the_fill(synthetic3, batch3):
    collator = Collator(synthetic3.modalities)
    fill = mean_fill([batch3], collator.text_batch("look at this"))
    v = make_view(batch3, ["text"], "mean", fill=fill)
    torch.testing.assert_close(v.values["image"][3], batch3.values["image"].mean(0))
    torch.testing.assert_close(v.values["tabular"][5], batch3.values["tabular"].mean(0))
    assert torch.equal(v.values["text"], batch3.values["text"])
    w = make_view(batch3, ["image"], "mean", fill=fill)
    neutral = collator.text_batch("look at this").values["text"][0]
    assert torch.equal(w.values["text"][0], neutral) and torch.equal(w.values["text"][7], neutral)
    with pytest.raises(ConfigError, match="fill"):
        make_view(batch3, ["image"], "mean")


def test_views_of_any_subset_of_three_modalities(synthetic3, batch3):
    model = tiny_model(synthetic3)
    subsets = [("image",), ("text",), ("tabular",), ("image", "tabular"), ("image", "text", "tabular")]
    with torch.no_grad():
        for keep in subsets:
            for removal in ("drop", "mask", "swap"):
                out = model(make_view(batch3, keep, removal, generator=torch.Generator().manual_seed(1)))
                assert out.shape == (len(batch3), len(synthetic3.labels))
    with pytest.raises(ConfigError, match="at least one"):
        make_view(batch3, [], "drop")
    with pytest.raises(ConfigError, match="unknown removal"):
        make_view(batch3, ["image"], "blur")
