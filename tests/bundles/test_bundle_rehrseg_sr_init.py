"""Where the self-SR stage starts (REHRSeg bundle, stage 1): FLAVR's frame-interpolation weights (optional), and
the data its pairs are cut from: the cubic zoom or the SMORE-style pre-upsampler's volume (optional stage 1a).

A checkpoint as FLAVR's training writes it (``{"epoch", "state_dict"}``, DataParallel's ``module.`` prefix, FLAVR's
parameter names, RGB stem, 4x interpolation head: tarun005/FLAVR ``model/Unet_3D_3D_interpolate.py``) starts every
encoder and decoder tensor of ``FLAVRSelfSR``; the 3-channel stem kernel and the heads keep their initialisation.
``train_pre_upsampler.json`` trains the 2D pre-upsampler; ``train_sr.json --sr_initialization smore`` then refines the
cubic zoom with it (refused without it, naming the command), records it by content and refuses to resume on another.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from bundle_test_utils import bundle_scripts, exception_messages, run_tiny
from common.benchmarking import parse_config_items, read_overlay
from common.nets import FLAVRSelfSR, SMOREPreUpsampler
from common.run_settings import RUN_SETTINGS_KEY, file_fingerprint
from common.transforms import PreUpsampleThinGridd

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "thick_slice_hr_segmentation_rehrseg"
WIDTHS = (4, 4, 8, 8, 8)  # stem, layer1..layer4
#: the value every tensor of the fake FLAVR checkpoint holds, so that a copied tensor is recognised
MARK = 0.5


def _flavr_state(widths=WIDTHS, blocks: int = 2, n_inputs: int = 4, outputs: int = 3) -> dict[str, torch.Tensor]:
    """FLAVR's ``UNet_3D_3D`` (R3D-18 encoder without BatchNorm, biases on: a multi-frame model) state_dict names
    and shapes, written out from its code, every tensor ``MARK``."""
    stem, w1, w2, w3, w4 = widths
    shapes = {"encoder.stem.0.weight": (stem, 3, 3, 7, 7), "encoder.stem.0.bias": (stem,)}
    layers = [(1, stem, w1, 1), (2, w1, w2, 2), (3, w2, w3, 2), (4, w3, w4, 1)]
    for layer, cin, cout, stride in layers:
        for block in range(blocks):
            name = f"encoder.layer{layer}.{block}"
            first_in = cin if block == 0 else cout
            shapes.update({
                f"{name}.conv1.0.weight": (cout, first_in, 3, 3, 3), f"{name}.conv1.0.bias": (cout,),
                f"{name}.conv2.0.weight": (cout, cout, 3, 3, 3), f"{name}.conv2.0.bias": (cout,),
                f"{name}.fg.attn_layer.0.weight": (cout, cout, 1, 1, 1), f"{name}.fg.attn_layer.0.bias": (cout,),
            })  # fmt: skip
            if block == 0 and (stride != 1 or cin != cout):
                shapes[f"{name}.downsample.0.weight"] = (cout, cin, 1, 1, 1)
    decoders = [("conv", (w3, w4, 3, 3, 3)), ("upconv", (2 * w3, w2, 3, 4, 4)), ("upconv", (2 * w2, w1, 3, 4, 4))]
    decoders += [("conv", (w1, 2 * w1, 3, 3, 3)), ("upconv", (2 * w1, w1, 3, 4, 4))]
    for index, (kind, weight) in enumerate(decoders):
        out = weight[0] if kind == "conv" else weight[1]
        shapes.update({
            f"decoder.{index}.{kind}.0.weight": weight, f"decoder.{index}.{kind}.0.bias": (out,),
            f"decoder.{index}.{kind}.1.attn_layer.0.weight": (out, out, 1, 1, 1),
            f"decoder.{index}.{kind}.1.attn_layer.0.bias": (out,),
        })  # fmt: skip
    shapes["feature_fuse.conv.0.weight"] = (w1, w1 * n_inputs, 1, 1)
    shapes.update({"outconv.1.weight": (3 * outputs, w1, 7, 7), "outconv.1.bias": (3 * outputs,)})
    return {name: torch.full(shape, MARK) for name, shape in shapes.items()}


def _initialise_sr(network: torch.nn.Module, path: Path | None) -> int:
    with bundle_scripts(BUNDLE):
        from scripts.weights import initialise_sr

        return initialise_sr(network, None if path is None else str(path))


def test_flavr_checkpoint_starts_the_encoder_and_decoder_and_leaves_the_stem_kernel_and_heads(tmp_path, caplog):
    flavr = _flavr_state()
    path = tmp_path / "FLAVR_4x.pth"
    torch.save({"epoch": 200, "state_dict": {f"module.{k}": v for k, v in flavr.items()}}, path)
    torch.manual_seed(0)
    network = FLAVRSelfSR(widths=WIDTHS, blocks=2)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    with caplog.at_level(logging.INFO):
        copied = _initialise_sr(network, path)
    # what cannot fit: FLAVR's RGB stem kernel (3 input channels, ours 2), its 1x1 fusion (ours 3x3) and its
    # 3 x 3-frame output conv (ours 2 x scale channels)
    unfit = {"stem.0.weight", "head.feature_fuse.weight", "head.outconv.1.weight", "head.outconv.1.bias"}
    assert copied == len(flavr) - len(unfit) == len(network.state_dict()) - len(unfit) - 1  # + the fusion's bias
    state = network.state_dict()
    for name, tensor in state.items():
        if name in unfit or name == "head.feature_fuse.bias":
            assert torch.equal(tensor, before[name]), name
        else:
            assert torch.equal(tensor, torch.full_like(tensor, MARK)), f"{name} was not started from FLAVR"
    for flavr_name, ours in [
        ("encoder.layer2.0.downsample.0.weight", "layer2.0.shortcut.weight"),
        ("encoder.layer1.1.fg.attn_layer.0.bias", "layer1.1.gate.attention.bias"),
        ("decoder.4.upconv.0.weight", "decoder_out.0.weight"),
        ("decoder.0.conv.1.attn_layer.0.weight", "decoder3.1.attention.weight"),
    ]:
        assert state[ours].shape == flavr[flavr_name].shape, (flavr_name, ours)
    said = [r.getMessage() for r in caplog.records if "initialised from" in r.getMessage()]
    assert said == [f"self-SR: {copied} tensors initialised from {path}; {len(unfit) + 1} keep their initialisation."]


def test_a_checkpoint_sharing_no_tensor_is_refused_naming_it_and_none_means_from_scratch(tmp_path, caplog):
    path = tmp_path / "other.pt"
    torch.save({"state_dict": {"backbone.conv.weight": torch.zeros(3, 3)}}, path)
    network = FLAVRSelfSR(widths=WIDTHS, blocks=1)
    with pytest.raises(ValueError, match=f"{path}: no tensor matches"):
        _initialise_sr(network, path)
    with caplog.at_level(logging.INFO):
        assert _initialise_sr(network, None) == 0
    assert any("training from scratch" in r.getMessage() for r in caplog.records)


def test_train_sr_json_passes_init_weights_to_the_network_it_trains(tmp_path):
    tiny = read_overlay(BUNDLE, "tiny.json")
    widths, blocks = tuple(tiny["sr_widths"]), tiny["sr_blocks"]
    path = tmp_path / "flavr.pth"
    torch.save({"state_dict": _flavr_state(widths, blocks)}, path)
    with bundle_scripts(BUNDLE):
        items = parse_config_items(
            BUNDLE, ["train.json", "train_sr.json"], {**tiny, "init_weights": str(path)}, ["sr_init", "sr_trained_def"]
        )
    network = items["sr_trained_def"]
    assert items["sr_init"] > 0 and torch.equal(network.layer1[0].conv1.weight, torch.full((4, 4, 3, 3, 3), MARK))


def _pre_upsampling(overrides: dict) -> PreUpsampleThinGridd:
    """The pre-upsampling transform of the self-SR stage's preprocessing, built as ``train_sr.json`` builds it."""
    with bundle_scripts(BUNDLE):
        items = parse_config_items(
            BUNDLE, ["train.json", "train_sr.json", "tiny.json"], overrides, ["train#preprocessing"]
        )
    [step] = [t for t in items["train#preprocessing"].transforms if isinstance(t, PreUpsampleThinGridd)]
    return step


@pytest.mark.slow
def test_the_smore_pre_upsampler_trains_and_the_self_sr_pairs_come_from_its_volumes(tmp_path):
    from common.data import write_meningioma

    data = write_meningioma(tmp_path / "data", n_subjects=5, seed=0, small=True)
    models = tmp_path / "models"
    common = {"dataset_dir": str(data), "ckpt_dir": str(models), "epochs": 1}
    sr_files = ["train.json", "train_sr.json"]
    with pytest.raises(Exception) as error:  # smore before the pre-upsampler exists
        run_tiny(BUNDLE, sr_files, **common, sr_initialization="smore", output_dir=str(tmp_path / "eval" / "sr"))
    assert "configs/train_pre_upsampler.json" in exception_messages(error.value)
    with pytest.raises(Exception) as error:
        run_tiny(BUNDLE, sr_files, **common, sr_initialization="wdsr", output_dir=str(tmp_path / "eval" / "sr"))
    assert "sr_initialization must be one of ('cubic', 'smore')" in exception_messages(error.value)
    assert not (models / "sr" / "plain.pt").exists()

    run_tiny(BUNDLE, [*sr_files, "train_pre_upsampler.json"], **common, output_dir=str(tmp_path / "eval" / "pre"))
    weights = models / "sr" / "pre_upsampler.pt"
    tiny = read_overlay(BUNDLE, "tiny.json")
    state = torch.load(weights, map_location="cpu", weights_only=True)
    SMOREPreUpsampler(tiny["pre_upsampler_channels"], tiny["pre_upsampler_blocks"]).load_state_dict(state)

    paths = {"dataset_dir": str(data), "ckpt_dir": str(models)}
    assert _pre_upsampling({**paths, "sr_initialization": "cubic"}).network is None
    network = _pre_upsampling({**paths, "sr_initialization": "smore"}).network
    assert all(torch.equal(v, state[k]) for k, v in network.state_dict().items())

    run_tiny(BUNDLE, sr_files, **common, sr_initialization="smore", output_dir=str(tmp_path / "eval" / "sr"))
    [checkpoint] = (models / "sr" / "plain_state").iterdir()
    settings = torch.load(checkpoint, map_location="cpu", weights_only=True)[RUN_SETTINGS_KEY]
    assert settings["sr_initialization"] == "smore" and settings["pre_upsampler"] == file_fingerprint(weights)
    torch.save({k: v + 0.01 for k, v in state.items()}, weights)  # another pre-upsampler: no resume on its data
    with pytest.raises(Exception) as error:
        run_tiny(
            BUNDLE, sr_files, **{**common, "epochs": 2}, sr_initialization="smore", output_dir=str(tmp_path / "eval")
        )
    assert "other settings (pre_upsampler: " in exception_messages(error.value)
