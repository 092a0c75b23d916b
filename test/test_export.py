"""PyTorch -> ONNX export: torchvision/R3M weight loading, parity, metadata, external data.

Tiny configurations keep it fast (ResNet-18 layout at width 8 on 64x64, a 2-block ViT on
32x32); one full-width reference encoder runs at 64x64. Every export runs the exporter's own
onnxruntime-vs-torch parity check; the tests also compare independently where it matters.
"""

from __future__ import annotations

import copy
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="torch is the optional export extra "
                            "(requirements-dev.txt)")

from hv2r_ros.cli import main as hv2r
from hv2r_ros.core.errors import ConfigError
from hv2r_ros.core.models.contract import (
    EncoderSpec,
    encoder_spec_from_metadata,
    policy_spec_from_metadata,
)
from hv2r_ros.core.robot_profile import load_robot_profile
from hv2r_ros.learning import export
from hv2r_ros.learning.architectures import ENCODERS, MlpPolicy, build_encoder
from hv2r_ros.learning.architectures.resnet import resnet18, resnet50
from hv2r_ros.learning.architectures.vit import VisionTransformer, resize_pos_embed
from hv2r_ros.learning.architectures.weights import WeightsError, load_weights


def _randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics/affines so parity exercises every BN."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


def _spec(model, size: int, arch: str = "resnet18-r3m") -> EncoderSpec:
    return ENCODERS[arch].spec(model, size, "test")


def _props(path) -> dict[str, str]:
    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def _panda_spec(embedding_size: int = 16, **kwargs):
    return export.policy_spec_for_robot(load_robot_profile("panda"),
                                        embedding_size=embedding_size, chunk_length=4, **kwargs)


# --- architecture layout and weight loading ------------------------------------------------


def test_resnet_state_dicts_have_torchvision_names_and_counts():
    r18, r50 = resnet18().state_dict(), resnet50().state_dict()
    # torchvision's resnet18/50 state dicts hold 122 / 320 entries, 2 of them fc.*
    assert (len(r18), len(r50)) == (120, 318)
    assert r18["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert r18["layer4.1.bn2.running_var"].shape == (512,)
    assert "bn1.num_batches_tracked" in r18 and not any(k.startswith("fc.") for k in r18)
    assert r50["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert r50["layer3.5.conv3.weight"].shape == (1024, 256, 1, 1)
    assert r50["layer4.0.conv2.weight"].shape == (512, 512, 3, 3)  # stride on the 3x3 (v1.5)
    assert resnet18().embedding_size == 512 and resnet50().embedding_size == 2048


def test_r3m_checkpoint_loads_strictly_after_prefix_stripping(tmp_path):
    source = _randomize(resnet18(width=8))
    state = {f"module.convnet.{k}": v for k, v in source.state_dict().items()}
    state["module.lang_rew.pred.0.weight"] = torch.zeros(3, 3)  # R3M's language head
    torch.save({"r3m": state}, tmp_path / "model.pt")
    fresh = resnet18(width=8)
    report = load_weights(fresh, tmp_path / "model.pt")
    assert report.stripped_prefixes == ("module.convnet.",)
    assert report.ignored == ("module.lang_rew.pred.0.weight",)
    for key, value in source.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value), key


def test_torchvision_checkpoint_drops_the_classifier():
    state = dict(resnet18(width=8).state_dict(), **{"fc.weight": torch.zeros(10, 64),
                                                    "fc.bias": torch.zeros(10)})
    report = load_weights(resnet18(width=8), state)
    assert report.stripped_prefixes == () and set(report.ignored) == {"fc.weight", "fc.bias"}


@pytest.mark.parametrize("edit, words", [
    (lambda s: s.update({"module.convnet.layer5.0.conv1.weight": torch.zeros(1)}),
     ["unexpected (1)", "layer5.0.conv1.weight"]),
    (lambda s: s.pop("module.convnet.layer3.1.bn1.running_mean"),
     ["missing (1)", "layer3.1.bn1.running_mean"]),
    (lambda s: s.update({"module.convnet.conv1.weight": torch.zeros(8, 3, 3, 3)}),
     ["shape mismatch (1)", "conv1.weight: checkpoint (8, 3, 3, 3) vs model (8, 3, 7, 7)"]),
])
def test_checkpoint_that_does_not_fit_names_the_keys(edit, words):
    state = {f"module.convnet.{k}": v for k, v in resnet18(width=8).state_dict().items()}
    edit(state)
    with pytest.raises(WeightsError) as info:
        load_weights(resnet18(width=8), state, file="r3m.pt")
    message = str(info.value)
    assert message.startswith("r3m.pt: state_dict: checkpoint does not fit ResNet")
    for word in words:
        assert word in message


def test_vit_checkpoint_with_other_resolution_is_resampled():
    big = VisionTransformer(img_size=64, patch_size=16, dim=32, depth=1, num_heads=2)
    small = VisionTransformer(img_size=32, patch_size=16, dim=32, depth=1, num_heads=2)
    load_weights(small, {f"backbone.{k}": v for k, v in big.state_dict().items()})
    assert torch.equal(small.pos_embed[:, 0], big.pos_embed[:, 0])  # cls entry kept
    assert small.pos_embed.shape == (1, 5, 32)
    with pytest.raises(ValueError, match="square grid"):
        resize_pos_embed(torch.zeros(1, 6, 4), 2)


# --- export and parity ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_export(tmp_path_factory):
    """A width-8 ResNet-18 with random BN statistics, exported once at 64x64."""
    model = _randomize(resnet18(width=8))
    spec = _spec(model, 64)
    path = tmp_path_factory.mktemp("resnet") / "encoder.onnx"
    result = export.export_encoder(model, spec, path, verbose=False)
    return model, spec, path, result


def test_resnet18_layout_export_parity_and_metadata(resnet_export):
    model, spec, path, result = resnet_export
    assert result.max_abs_error <= result.tolerance and result.batch == export.PARITY_BATCH
    assert encoder_spec_from_metadata(_props(path)) == spec
    graph = onnx.load(str(path), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["images"]
    assert [o.name for o in graph.output] == ["embedding"]
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 64, 64]
    data = export.data_path(path)
    assert data.stat().st_mode & 0o777 == path.stat().st_mode & 0o777  # not owner-only
    # independent of the exporter's own check: another batch size, another seed
    x = np.random.default_rng(7).standard_normal((5, 3, 64, 64)).astype(np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"images": x})[0]
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.from_numpy(x)).numpy(), rtol=1e-4,
                                   atol=1e-4)


def test_r3m_metadata_reproduces_r3m_preprocessing():
    """R3M: x / 255, then ImageNet Normalize; the runtime's gain/offset must equal that."""
    model, arch = build_encoder("resnet18-r3m")
    spec = arch.spec(model, 224, arch.pretrained_on)
    assert (spec.input_size, spec.embedding_size, spec.pixel_format) == ((224, 224), 512, "rgb")
    pixels = np.array([0.0, 17.0, 128.0, 255.0])
    low, high = spec.pixel_range
    for c, (mean, std) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        runtime = (low + pixels * (high - low) / 255.0 - spec.mean[c]) / spec.std[c]
        np.testing.assert_allclose(runtime, (pixels / 255.0 - mean) / std, rtol=1e-12)


def test_vit_export_parity(tmp_path):
    model = VisionTransformer(img_size=32, patch_size=16, dim=32, depth=2, num_heads=2,
                              layer_scale=0.5)
    spec = _spec(model, 32, "vits16-dinov2")
    result = export.export_encoder(model, spec, tmp_path / "vit.onnx", verbose=False)
    assert result.max_abs_error <= result.tolerance
    assert _props(tmp_path / "vit.onnx")["hv2r.embedding_size"] == "32"


def test_policy_export_parity_and_metadata(tmp_path):
    spec = _panda_spec(action_space="ee_delta")
    assert (spec.action_size, spec.proprio_size, spec.camera_order) == (7, 7, ("wrist",
                                                                              "overhead"))
    assert spec.end_effector_frames == ("panda_hand_tcp",) and spec.control_rate_hz == 100.0
    model = MlpPolicy(2, 16, 7, 4, 7, 32, 2)
    result = export.export_policy(model, spec, tmp_path / "policy.onnx", verbose=False)
    assert result.max_abs_error <= result.tolerance
    assert policy_spec_from_metadata(_props(tmp_path / "policy.onnx")) == spec
    graph = onnx.load(str(tmp_path / "policy.onnx"), load_external_data=False).graph
    assert [i.name for i in graph.input] == ["camera_embeddings", "goal_embedding", "proprio"]
    assert [o.name for o in graph.output] == ["actions"]


def test_policy_spec_from_robot_checks_statistics():
    stats = {"action_mean": [0.0] * 8, "action_std": [2.0] * 8,
             "proprio_mean": [0.1] * 7, "proprio_std": [0.5] * 7}
    spec = _panda_spec(action_space="joint_position", stats=stats)
    assert spec.action_size == 8 and spec.action_std == (2.0,) * 8
    with pytest.raises(ConfigError, match="hv2r.action_std: must have 8 entries"):
        _panda_spec(action_space="joint_position", stats=dict(stats, action_std=[1.0]))
    with pytest.raises(ConfigError, match="valid choices"):
        _panda_spec(stats={"actions_mean": [0.0]})


def test_spec_and_model_disagreeing_is_refused(tmp_path):
    model = resnet18(width=8)
    wrong = EncoderSpec(**{**_spec(model, 64).__dict__, "embedding_size": 32})
    with pytest.raises(export.ModelContractError, match=r"\(2, 64\) does not match .*\(2, 32\)"):
        export.export_encoder(model, wrong, tmp_path / "encoder.onnx", verbose=False)
    assert not (tmp_path / "encoder.onnx").exists()


def test_moved_pair_loads_its_external_data(tmp_path, resnet_export):
    from hv2r_ros.core.models.runtime import CPU, ModelPair

    encoder, spec, path, _ = resnet_export
    (tmp_path / "a").mkdir()
    for name in ("encoder.onnx", "encoder.onnx.data"):
        shutil.copy(path.with_name(name), tmp_path / "a" / name)
    policy = MlpPolicy(2, 64, 7, 4, 7, 32, 1)
    pol_spec = _panda_spec(embedding_size=64, action_space="ee_delta")
    export.export_policy(policy, pol_spec, tmp_path / "a" / "policy.onnx", verbose=False)
    model = onnx.load(str(tmp_path / "a" / "policy.onnx"), load_external_data=False)
    locations = {e.value for t in model.graph.initializer for e in t.external_data
                 if e.key == "location"}
    assert locations == {"policy.onnx.data"}  # relative: travels with the folder
    shutil.move(tmp_path / "a", tmp_path / "b")
    pair = ModelPair.load(tmp_path / "b", [CPU], intra_op_threads=1)
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(spec.mean).view(1, 3, 1, 1)) / torch.tensor(spec.std).view(1, 3, 1, 1)
    with torch.no_grad():
        want = encoder(x).numpy()
        goal, proprio = torch.randn(64), torch.randn(7)
        actions = policy(torch.from_numpy(want)[None], goal[None], proprio[None])[0].numpy()
    got = pair.encoder.embed(images)
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    # identity statistics: the runtime's de-normalised actions are the raw policy output
    np.testing.assert_allclose(pair.policy.infer(got, goal.numpy(), proprio.numpy()), actions,
                               atol=1e-4, rtol=1e-4)


def test_parity_check_catches_a_model_that_changed(resnet_export):
    model, _, path, _ = resnet_export
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.layer3[0].conv1.weight.mul_(1.5)
    with pytest.raises(export.ExportParityError,
                       match="encoder.onnx: embedding: ONNX and PyTorch disagree"):
        export.check_parity(model, path)


def test_parity_tolerance(resnet_export):
    model, _, path, _ = resnet_export
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.layer4[1].bn2.bias.add_(1e-3)  # a small change: caught only when tight
    export.check_parity(model, path, atol=1e-2, rtol=0.0)
    with pytest.raises(export.ExportParityError):
        export.check_parity(model, path, atol=1e-5, rtol=0.0)


def test_export_whose_parity_fails_leaves_no_model(tmp_path, monkeypatch):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten())
    model.embedding_size = 4
    spec = _spec(model, 16)
    real = export._to_onnx

    def export_then_tamper(module, *args):
        proto = real(module, *args)
        with torch.no_grad():
            module[0].bias.add_(1.0)  # torch now differs from the exported graph
        return proto

    monkeypatch.setattr(export, "_to_onnx", export_then_tamper)
    path = tmp_path / "encoder.onnx"
    with pytest.raises(export.ExportParityError):
        export.export_encoder(model, spec, path, verbose=False)
    assert not path.exists() and not export.data_path(path).exists()


# --- hv2r export -------------------------------------------------------------------------


def test_cli_exports_r3m_weights_and_a_policy(tmp_path, capsys):
    source = _randomize(resnet18())
    torch.save({"r3m": {f"module.convnet.{k}": v for k, v in source.state_dict().items()}},
               tmp_path / "r3m.pt")
    out = tmp_path / "models"
    argv = ["export", "--arch", "resnet18-r3m", "--weights", str(tmp_path / "r3m.pt"),
            "--input-size", "64", "--out", str(out), "--policy-arch", "mlp",
            "--robot", "panda", "--chunk-length", "4"]
    assert hv2r(argv) == 2  # the policy has no weights and no --random-init
    assert "--policy-weights: no weights given" in capsys.readouterr().err
    assert hv2r([*argv, "--random-init"]) == 0
    enc = encoder_spec_from_metadata(_props(out / "encoder.onnx"))
    assert (enc.architecture, enc.pretrained_on, enc.embedding_size) == (
        "resnet18-r3m", "Ego4D (R3M)", 512)
    pol = policy_spec_from_metadata(_props(out / "policy.onnx"))
    assert pol.embedding_size == 512 and pol.robot == "panda"
    assert "loaded 120 tensors (stripped module.convnet." in capsys.readouterr().out


def test_cli_random_init_is_explicit_and_recorded(tmp_path, capsys):
    out = tmp_path / "models"
    assert hv2r(["export", "--arch", "vits16-dino", "--out", str(out)]) == 2
    assert "--weights: no weights given" in capsys.readouterr().err
    assert not out.exists()
    assert hv2r(["export", "--arch", "reference", "--input-size", "32", "--random-init",
                 "--policy-arch", "transformer", "--robot", "panda", "--action-space",
                 "joint_position", "--chunk-length", "2", "--out", str(out)]) == 0
    enc = encoder_spec_from_metadata(_props(out / "encoder.onnx"))
    assert enc.pretrained_on.startswith("random initialisation") and enc.embedding_size == 256
    pol = policy_spec_from_metadata(_props(out / "policy.onnx"))
    assert (pol.action_size, pol.chunk_length, pol.embedding_size) == (8, 2, 256)
