"""Networks: the batched critic ensemble against separate critics, the actor's log-probabilities,
the shared-camera conv encoder, and the frozen ResNet-18 path (real torchvision, no mocks)."""

from __future__ import annotations

import math
import socket

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.errors import ConfigError, PretrainedWeightsError
from robot_rl.policies.networks import LOG_STD_MAX, LOG_STD_MIN, Actor, CriticEnsemble, ImageEncoder


def separate_critics(ens: CriticEnsemble) -> list[nn.Sequential]:
    """E plain nn.Sequential critics holding copies of the ensemble's weights."""
    critics = []
    for e in range(ens.num_members):
        layers: list[nn.Module] = []
        for i, lin in enumerate(ens.hidden):
            linear = nn.Linear(lin.weight.shape[1], lin.weight.shape[2])
            linear.weight.data.copy_(lin.weight[e].T)
            linear.bias.data.copy_(lin.bias[e, 0])
            layers.append(linear)
            if ens.norms:
                norm = nn.LayerNorm(lin.weight.shape[2])
                norm.weight.data.copy_(ens.norms[i].weight[e, 0])
                norm.bias.data.copy_(ens.norms[i].bias[e, 0])
                layers.append(norm)
            layers.append(nn.ReLU())
        out = nn.Linear(ens.out.weight.shape[1], 1)
        out.weight.data.copy_(ens.out.weight[e].T)
        out.bias.data.copy_(ens.out.bias[e, 0])
        critics.append(nn.Sequential(*layers, out))
    return critics


@pytest.mark.parametrize("layer_norm", [True, False])
def test_ensemble_equals_separate_critics_forward_and_gradients(layer_norm):
    torch.manual_seed(0)
    ens = CriticEnsemble(7, (16, 8), num_members=5, layer_norm=layer_norm)
    # LayerNorm affine params start at 1/0: perturb them so the test sees them used per member
    for p in ens.norms.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    critics = separate_critics(ens)
    x = torch.randn(11, 7, requires_grad=True)
    q = ens(x)
    q_ref = torch.stack([c(x).squeeze(-1) for c in critics])
    assert q.shape == (5, 11)
    torch.testing.assert_close(q, q_ref)
    w = torch.randn(5, 11)  # a loss that weights members differently
    grad_x, = torch.autograd.grad((q * w).sum(), x, retain_graph=True)
    grad_x_ref, = torch.autograd.grad((q_ref * w).sum(), x, retain_graph=True)
    torch.testing.assert_close(grad_x, grad_x_ref)
    (q * w).sum().backward()
    (q_ref * w).sum().backward()
    for e, c in enumerate(critics):
        torch.testing.assert_close(ens.hidden[0].weight.grad[e], c[0].weight.grad.T)
        torch.testing.assert_close(ens.out.bias.grad[e, 0], c[-1].bias.grad)
        if layer_norm:
            torch.testing.assert_close(ens.norms[1].weight.grad[e, 0], c[4].weight.grad)


def test_ensemble_members_initialised_independently_like_linear():
    torch.manual_seed(0)
    ens = CriticEnsemble(64, (32,), num_members=4)
    w = ens.hidden[0].weight  # (E, in, out)
    bound = 1 / math.sqrt(64)
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert not any(torch.equal(w[0], w[e]) for e in range(1, 4))
    # same distribution as nn.Linear: uniform in +-1/sqrt(fan_in) has std bound/sqrt(3)
    assert abs(w.std().item() - bound / math.sqrt(3)) < 0.1 * bound


def test_ensemble_subset_evaluates_only_the_chosen_members():
    torch.manual_seed(0)
    ens = CriticEnsemble(6, (8,), num_members=6)
    x = torch.randn(4, 6)
    members = torch.tensor([4, 1])
    torch.testing.assert_close(ens(x, members), ens(x)[members])


def test_actor_log_prob_matches_tanh_gaussian_formula():
    torch.manual_seed(0)
    actor = Actor(5, 3, (16,))
    feats = torch.randn(7, 5)
    torch.manual_seed(1)
    action, log_prob = actor.sample(feats)
    torch.manual_seed(1)
    noise = torch.randn(7, 3)
    raw_mean, raw_log_std = actor.net(feats).chunk(2, dim=-1)
    log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw_log_std) + 1)
    x = raw_mean + log_std.exp() * noise
    expected = torch.distributions.Normal(raw_mean, log_std.exp()).log_prob(x) - torch.log1p(-torch.tanh(x) ** 2)
    torch.testing.assert_close(action, torch.tanh(x))
    torch.testing.assert_close(log_prob, expected.sum(-1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(actor.deterministic(feats), torch.tanh(raw_mean))
    assert action.abs().max() < 1


def test_drq_encoder_shares_conv_weights_across_cameras():
    torch.manual_seed(0)
    shapes = {"wrist": (24, 24, 3), "front": (24, 24, 3), "side": (20, 28, 3)}
    enc = ImageEncoder(shapes, latent_dim=10, strides=(2, 1), channels_last=True)
    images = {k: torch.randint(0, 256, (3, *s), dtype=torch.uint8) for k, s in shapes.items()}
    z = enc(images)
    assert z.shape == (3, 10) and z.dtype == torch.float32 and z.abs().max() < 1

    def conv(img: torch.Tensor) -> torch.Tensor:  # one camera by hand: (B, H, W, 3) -> (B, h*w*C)
        x = img.permute(0, 3, 1, 2).float() / 255 - 0.5
        x = F.relu(F.conv2d(x, enc.backbone[0].weight, enc.backbone[0].bias, stride=2))
        x = F.relu(F.conv2d(x, enc.backbone[2].weight, enc.backbone[2].bias, stride=1))
        return x.permute(0, 2, 3, 1).flatten(1)

    # groups: same-size cameras in sorted-name order ("front", "wrist"), then "side"
    feats = torch.cat([conv(images["front"]), conv(images["wrist"]), conv(images["side"])], dim=1)
    assert enc.feature_dim == feats.shape[1]
    torch.testing.assert_close(z, enc.projection(feats), rtol=1e-4, atol=1e-5)
    contiguous = ImageEncoder(shapes, latent_dim=10, strides=(2, 1), channels_last=False)
    contiguous.load_state_dict(enc.state_dict())
    torch.testing.assert_close(contiguous(images), z, rtol=1e-4, atol=1e-5)


def test_encoder_rejects_images_too_small_and_unknown_backbone():
    with pytest.raises(ConfigError, match="too small"):
        ImageEncoder({"cam": (6, 6, 3)}, strides=(2, 2, 2))
    with pytest.raises(ConfigError, match="unknown image encoder"):
        ImageEncoder({"cam": (32, 32, 3)}, backbone="vit")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_resnet18_loads_local_weights_and_stays_frozen(tmp_path, suffix):
    import torchvision

    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pt":
        torch.save(reference, path)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in reference.items()}, str(path))
    torch.manual_seed(1)  # a different random init, so loading must be what makes the weights equal
    enc = ImageEncoder({"a": (64, 64, 3), "b": (64, 64, 3)}, latent_dim=16, backbone="resnet18", pretrained=str(path))
    loaded = enc.backbone.state_dict()
    for k, v in reference.items():
        if not k.startswith("fc."):
            assert torch.equal(loaded[_seq_key(k)], v), k
    assert enc.feature_dim == 2 * 512
    assert all(not p.requires_grad for p in enc.backbone.parameters())
    enc.train()
    assert not enc.backbone.training and enc.projection.training
    images = {k: torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8) for k in "ab"}
    enc(images).sum().backward()
    assert all(p.grad is None for p in enc.backbone.parameters())
    assert enc.projection[0].weight.grad is not None
    bn_before = enc.backbone[1].running_mean.clone()
    enc(images)
    assert torch.equal(enc.backbone[1].running_mean, bn_before)  # BatchNorm statistics never move


def _seq_key(k: str) -> str:
    """torchvision ResNet key -> key inside the children-Sequential (conv1, bn1, relu, maxpool, layer1..4, avgpool)."""
    index = {"conv1": 0, "bn1": 1, "layer1": 4, "layer2": 5, "layer3": 6, "layer4": 7}
    head, rest = k.split(".", 1)
    return f"{index[head]}.{rest}"


def test_resnet18_missing_or_wrong_weights_file(tmp_path):
    with pytest.raises(PretrainedWeightsError, match="does not exist"):
        ImageEncoder({"cam": (32, 32, 3)}, backbone="resnet18", pretrained=str(tmp_path / "nope.pt"))
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(PretrainedWeightsError, match="not a torchvision ResNet-18"):
        ImageEncoder({"cam": (32, 32, 3)}, backbone="resnet18", pretrained=str(tmp_path / "other.pt"))


def test_resnet18_imagenet_offline_says_to_pass_a_local_path(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached download can make this succeed
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(5.0)
    try:
        ImageEncoder({"cam": (32, 32, 3)}, backbone="resnet18", pretrained="imagenet")
    except PretrainedWeightsError as e:
        assert "local file path" in str(e)
    else:
        pytest.skip("this machine could download the ImageNet weights")
    finally:
        socket.setdefaulttimeout(old_timeout)
