"""SAC/RLPD agent: the target and the three losses against explicit formulas, gradient routing to
the encoder, the DrQ shift, bit-identical resume from a checkpoint, devices (real torch, no mocks)."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from robot_rl.agent import SACAgent, SACConfig, random_shift, resolve_device
from robot_rl.batch import Batch, Obs
from robot_rl.errors import CheckpointError, ConfigError, DeviceUnavailableError

CAMS = {"front": (24, 24, 3), "wrist": (24, 24, 3)}
SMALL_PIXELS = dict(encoder_strides=(2, 1), encoder_channels=8, encoder_latent_dim=6, image_shift_pad=2)


def make_batch(n: int, state_dim: int, action_dim: int, cams: dict[str, tuple[int, int, int]] | None = None,
               seed: int = 0) -> Batch:
    g = torch.Generator().manual_seed(seed)

    def obs() -> Obs:
        return Obs(torch.randn(n, state_dim, generator=g),
                   {k: torch.randint(0, 256, (n, *s), generator=g, dtype=torch.uint8) for k, s in (cams or {}).items()})

    return Batch(obs(), torch.rand(n, action_dim, generator=g) * 2 - 1, torch.randn(n, generator=g), obs(),
                 (torch.rand(n, generator=g) < 0.3).float())


# ----------------------------------------------------------- explicit formulas
def q_by_hand(critic_params: dict[str, torch.Tensor], x: torch.Tensor, e: int) -> torch.Tensor:
    """Member e of a one-hidden-layer LayerNorm critic: W2 relu(LN(x W1 + b1)) + b2 -> (B,)."""
    h = x @ critic_params["hidden.0.weight"][e] + critic_params["hidden.0.bias"][e]
    h = (h - h.mean(-1, keepdim=True)) / torch.sqrt(h.var(-1, unbiased=False, keepdim=True) + 1e-5)
    h = torch.relu(h * critic_params["norms.0.weight"][e] + critic_params["norms.0.bias"][e])
    return (h @ critic_params["out.weight"][e] + critic_params["out.bias"][e]).squeeze(-1)


def pi_by_hand(actor_params: dict[str, torch.Tensor], x: torch.Tensor, noise: torch.Tensor):
    """Tanh-Gaussian sample and log-prob with the change-of-variables term log(1 - tanh(u)^2)."""
    h = torch.relu(x @ actor_params["net.0.weight"].T + actor_params["net.0.bias"])
    mean, raw = (h @ actor_params["net.2.weight"].T + actor_params["net.2.bias"]).chunk(2, -1)
    log_std = -5 + 3.5 * (torch.tanh(raw) + 1)
    u = mean + log_std.exp() * noise
    log_prob = (-0.5 * noise**2 - log_std - 0.5 * math.log(2 * math.pi) - torch.log1p(-torch.tanh(u) ** 2)).sum(-1)
    return torch.tanh(u), log_prob


def test_target_and_losses_match_hand_computation():
    E, M, B, S, A, gamma, alpha0 = 4, 2, 6, 3, 2, 0.9, 0.5
    cfg = SACConfig(batch_size=B, utd_ratio=1, num_critics=E, critic_subset_size=M, hidden_dims=(5,), gamma=gamma,
                    init_temperature=alpha0, tau=0.1, backup_entropy=True)
    torch.manual_seed(0)
    agent = SACAgent(S, {}, A, cfg)
    with torch.no_grad():  # LayerNorm affine away from 1/0 so it is checked too
        for p in agent.critic.norms.parameters():
            p.add_(0.2 * torch.randn_like(p))
    batch = make_batch(B, S, A)
    critic0 = {k: v.clone() for k, v in agent.critic.state_dict().items()}
    target0 = {k: v.clone() for k, v in agent.target_critic.state_dict().items()}
    actor0 = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    torch.manual_seed(123)
    logs = agent.update(batch)
    torch.manual_seed(123)  # the update's random draws, in order: a' noise, target subset, a~pi noise
    noise_next, subset, noise_pi = torch.randn(B, A), torch.randperm(E)[:M], torch.randn(B, A)

    # critic target y = r + gamma (1 - term) (min_{e in subset} Q'_e(s', a') - alpha log pi(a'|s'))
    a_next, logp_next = pi_by_hand(actor0, batch.next_obs.state, noise_next)
    x_next = torch.cat([batch.next_obs.state, a_next], 1)
    q_next = torch.stack([q_by_hand(target0, x_next, int(e)) for e in subset]).min(0).values
    y = batch.reward + gamma * (1 - batch.terminated) * (q_next - alpha0 * logp_next)
    assert logs["values/target_q_mean"] == pytest.approx(y.mean().item(), rel=1e-5, abs=1e-6)

    # critic loss: mean over members and batch of (Q_e(s, a) - y)^2; its gradient reached the critic
    params = {k: v.clone().requires_grad_() for k, v in critic0.items()}
    x = torch.cat([batch.obs.state, batch.action], 1)
    critic_loss = torch.stack([(q_by_hand(params, x, e) - y) ** 2 for e in range(E)]).mean()
    critic_loss.backward()
    assert logs["losses/critic"] == pytest.approx(critic_loss.item(), rel=1e-5)
    torch.testing.assert_close(agent.critic.hidden[0].weight.grad, params["hidden.0.weight"].grad)
    torch.testing.assert_close(agent.critic.norms[0].bias.grad, params["norms.0.bias"].grad)
    # Polyak: target <- target + tau (online_after_step - target)
    for k, v in agent.target_critic.state_dict().items():
        torch.testing.assert_close(v, target0[k] + 0.1 * (agent.critic.state_dict()[k] - target0[k]))

    # actor loss: mean(alpha log pi(a|s) - mean_e Q_e(s, a)), with the critic after its step
    critic1 = {k: v.detach() for k, v in agent.critic.state_dict().items()}
    actor_params = {k: v.clone().requires_grad_() for k, v in actor0.items()}
    a_pi, logp_pi = pi_by_hand(actor_params, batch.obs.state, noise_pi)
    x_pi = torch.cat([batch.obs.state, a_pi], 1)
    q_pi = torch.stack([q_by_hand(critic1, x_pi, e) for e in range(E)]).mean(0)
    actor_loss = (alpha0 * logp_pi - q_pi).mean()
    actor_loss.backward()
    assert logs["losses/actor"] == pytest.approx(actor_loss.item(), rel=1e-5)
    torch.testing.assert_close(agent.actor.net[0].weight.grad, actor_params["net.0.weight"].grad)

    # temperature loss: alpha (H - H_target), H = -mean log pi, H_target = -A/2; d/dlog_alpha = same
    entropy = -logp_pi.mean().item()
    temperature_loss = alpha0 * (entropy - (-A / 2))
    assert logs["losses/temperature"] == pytest.approx(temperature_loss, rel=1e-5)
    assert logs["values/entropy"] == pytest.approx(entropy, rel=1e-5)
    assert agent.log_alpha.grad.item() == pytest.approx(temperature_loss, rel=1e-5)
    # first Adam step moves log alpha by lr against the gradient's sign
    assert agent.log_alpha.item() == pytest.approx(math.log(alpha0) - 3e-4 * np.sign(temperature_loss), abs=1e-7)


def test_target_uses_a_random_subset_of_exactly_subset_size_members():
    torch.manual_seed(0)
    E = 10
    for m in (1, 2, 10):
        agent = SACAgent(3, {}, 2, SACConfig(batch_size=8, utd_ratio=3, num_critics=E, critic_subset_size=m,
                                              hidden_dims=(8,), backup_entropy=False, gamma=1.0, tau=0.0))
        with torch.no_grad():  # target member e outputs the constant e + 1, whatever the input
            agent.target_critic.out.weight.zero_()
            agent.target_critic.out.bias.copy_(torch.arange(1.0, E + 1).view(E, 1, 1))
        evaluated = []
        agent.target_critic.register_forward_hook(lambda mod, inp, out: evaluated.append(out.shape[0]))
        batch = make_batch(24, 3, 2)
        batch = batch._replace(reward=torch.zeros(24), terminated=torch.zeros(24))
        torch.manual_seed(7)
        logs = agent.update(batch)
        assert evaluated == [m, m, m]
        torch.manual_seed(7)
        expected = []
        for _ in range(3):  # per minibatch: a' noise, then the subset (the actor's draw comes after all three)
            torch.randn(8, 2)
            expected.append(float(torch.randperm(E)[:m].min() + 1))
        assert logs["values/target_q_mean"] == pytest.approx(np.mean(expected))


def test_encoder_is_trained_by_the_critic_only():
    torch.manual_seed(0)
    agent = SACAgent(4, CAMS, 2, SACConfig(batch_size=8, utd_ratio=2, num_critics=3, hidden_dims=(16,), **SMALL_PIXELS))
    calls = {"encoder": 0, "critic": 0, "actor": 0}
    for name, module in (("encoder", agent.encoder), ("critic", agent.critic), ("actor", agent.actor)):
        for p in module.parameters():
            p.register_hook(lambda g, name=name: calls.__setitem__(name, calls[name] + 1) or g)
    encoder_hooks = len(list(agent.encoder.parameters()))
    critic_hooks = len(list(agent.critic.parameters()))
    before = {k: v.clone() for k, v in agent.encoder.state_dict().items()}
    agent.update(make_batch(16, 4, 2, CAMS))
    assert calls["encoder"] == 2 * encoder_hooks  # one backward per critic minibatch, none from the actor
    assert calls["critic"] == 2 * critic_hooks  # the actor loss does not fill critic weight gradients
    assert calls["actor"] == len(list(agent.actor.parameters()))
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in agent.encoder.parameters())
    assert any(not torch.equal(before[k], v) for k, v in agent.encoder.state_dict().items())


def test_actor_warmup_trains_the_critic_only_for_the_first_updates():
    torch.manual_seed(0)
    agent = SACAgent(4, {}, 2, SACConfig(batch_size=8, utd_ratio=1, hidden_dims=(16,), actor_warmup_updates=3))
    actor0, alpha0 = [p.clone() for p in agent.actor.parameters()], agent.log_alpha.detach().clone()
    critic0 = [p.clone() for p in agent.critic.parameters()]
    for i in range(3):
        logs = agent.update(make_batch(8, 4, 2, seed=i))
        assert "losses/actor" not in logs  # warm-up: no actor or temperature step
    assert all(torch.equal(a, b) for a, b in zip(actor0, agent.actor.parameters()))
    assert torch.equal(alpha0, agent.log_alpha.detach())
    assert not all(torch.equal(a, b) for a, b in zip(critic0, agent.critic.parameters()))
    assert "losses/actor" in agent.update(make_batch(8, 4, 2, seed=3))  # the 4th update steps the actor
    assert not all(torch.equal(a, b) for a, b in zip(actor0, agent.actor.parameters()))


def test_random_shift_is_a_per_sample_translation():
    torch.manual_seed(0)
    img = torch.randint(0, 256, (1, 12, 10, 3), dtype=torch.uint8).expand(32, -1, -1, -1).contiguous()
    torch.manual_seed(5)
    out = random_shift(img, 3)
    assert out.shape == img.shape and out.dtype == torch.uint8
    torch.manual_seed(5)
    shifts = torch.randint(-3, 4, (32, 2))
    padded = np.pad(img[0].numpy(), ((3, 3), (3, 3), (0, 0)), mode="edge")  # DrQ: replicate-pad, then crop
    for b, (dy, dx) in enumerate(shifts.tolist()):
        np.testing.assert_array_equal(out[b].numpy(), padded[3 + dy: 3 + dy + 12, 3 + dx: 3 + dx + 10])
    assert len({tuple(s) for s in shifts.tolist()}) > 10 and len({o.numpy().tobytes() for o in out}) > 10
    assert random_shift(img, 0) is img
    float_img = img.float()
    torch.manual_seed(5)
    assert random_shift(float_img, 3).dtype == torch.float32


@pytest.mark.parametrize("pixels", [False, True])
def test_checkpoint_then_load_gives_identical_next_update(pixels):
    cams = CAMS if pixels else {}
    cfg = SACConfig(batch_size=8, utd_ratio=2, num_critics=3, hidden_dims=(16,), actor_update_period=2,
                    **(SMALL_PIXELS if pixels else {}))
    torch.manual_seed(0)
    a = SACAgent(5, cams, 2, cfg)
    for seed in range(3):  # optimiser moments, Polyak targets, update counter all non-trivial
        a.update(make_batch(16, 5, 2, cams, seed=seed))
    buf = io.BytesIO()
    torch.save(a.checkpoint_state(), buf)
    buf.seek(0)
    torch.manual_seed(99)  # a fresh agent with other initial weights
    b = SACAgent(5, cams, 2, cfg)
    b.load_checkpoint_state(torch.load(buf, weights_only=True))
    batch = make_batch(16, 5, 2, cams, seed=10)
    rng = torch.get_rng_state()
    logs_a = a.update(batch)
    torch.set_rng_state(rng)
    logs_b = b.update(batch)
    assert logs_a == logs_b and "losses/actor" in logs_a
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    for name in ("critic_optim", "actor_optim", "temperature_optim"):
        opt_a, opt_b = getattr(a, name).state_dict()["state"], getattr(b, name).state_dict()["state"]
        for i in opt_a:
            for k in opt_a[i]:
                assert torch.equal(opt_a[i][k], opt_b[i][k]), (name, i, k)


def test_load_checkpoint_of_another_shape_is_a_clear_error():
    cfg = SACConfig(batch_size=4, utd_ratio=1, num_critics=2, hidden_dims=(8,))
    state = SACAgent(3, {}, 2, cfg).checkpoint_state()
    with pytest.raises(CheckpointError, match="does not fit this agent"):
        SACAgent(4, {}, 2, cfg).load_checkpoint_state(state)


def test_bad_settings_and_batches_are_clear_errors():
    with pytest.raises(ConfigError, match="critic_subset_size"):
        SACAgent(3, {}, 2, SACConfig(num_critics=2, critic_subset_size=3))
    agent = SACAgent(3, {}, 2, SACConfig(batch_size=4, utd_ratio=2, num_critics=2, hidden_dims=(8,)))
    with pytest.raises(ConfigError, match="utd_ratio \\* batch_size = 2 \\* 4"):
        agent.update(make_batch(4, 3, 2))


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("gpu0")
    if torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="only"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(DeviceUnavailableError, match="--device cpu"):
            resolve_device("cuda")
        with pytest.raises(DeviceUnavailableError):
            resolve_device("cuda:1")


def test_frozen_resnet18_agent_trains_only_the_projection(tmp_path):
    import torchvision

    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "resnet18.pt")
    cfg = SACConfig(batch_size=4, utd_ratio=2, num_critics=2, hidden_dims=(8,), encoder="resnet18",
                    pretrained_weights=str(tmp_path / "resnet18.pt"), encoder_latent_dim=6, image_shift_pad=2)
    torch.manual_seed(0)
    agent = SACAgent(3, {"front": (32, 32, 3)}, 2, cfg)
    backbone = {k: v.clone() for k, v in agent.encoder.backbone.state_dict().items()}
    projection = agent.encoder.projection[0].weight.clone()
    agent.update(make_batch(8, 3, 2, {"front": (32, 32, 3)}))
    for k, v in agent.encoder.backbone.state_dict().items():
        assert torch.equal(v, backbone[k]), k  # weights and BatchNorm statistics unchanged
    assert not torch.equal(agent.encoder.projection[0].weight, projection)
    with pytest.raises(ConfigError, match="only used by encoder='resnet18'"):
        SACAgent(3, {"front": (32, 32, 3)}, 2, SACConfig(pretrained_weights="x.pt"))


def test_state_normalizer_fits_demo_statistics_and_floors_constant_entries():
    from robot_rl.policies.networks import StateNormalizer

    norm = StateNormalizer(3, min_std=0.01)
    x = torch.tensor([[0.5, 1.0, 2.0], [0.52, 1.0, 4.0], [0.54, 1.0, 6.0]])
    norm.fit(x)
    torch.testing.assert_close(norm.mean, torch.tensor([0.52, 1.0, 4.0]))
    torch.testing.assert_close(norm.std, torch.tensor([0.02, 0.01, 2.0]))  # constant column floored
    torch.testing.assert_close(norm(x)[:, 0], torch.tensor([-1.0, 0.0, 1.0]))
    assert norm(torch.tensor([[100.0, 1.0, 4.0]]))[0, 0] == norm.clip
    with pytest.raises(ValueError, match="fit"):
        norm.fit(torch.zeros(1, 3))
