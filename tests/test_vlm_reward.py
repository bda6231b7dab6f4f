"""VLM-RM rewards through the real open_clip and transformers code paths, on tiny randomly
initialised models built and saved here (nothing is downloaded)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

open_clip = pytest.importorskip("open_clip")
transformers = pytest.importorskip("transformers")

import robot_rl  # noqa: E402,F401 - registers the env IDs
from robot_rl.errors import ConfigError, PretrainedWeightsError  # noqa: E402
from robot_rl.rewards.base import RewardModelWrapper, make_reward_model  # noqa: E402
from robot_rl.rewards.vlm import VLMReward, goal_baseline_reward  # noqa: E402

GOAL, BASELINE = "a robot gripper holding a red cube above the table", "a robot arm and a red cube on a table"
WORDS = ("a an the robot arm gripper holding red blue green cube above on table lifted picture of and in "
         "open closed is". split())
TINY_OPEN_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
                  "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


class Tiny:
    """An in-memory model plus what VLMReward needs to load the same weights from disk."""

    def __init__(self, backend: str, kwargs: dict, image_embed, text_embed) -> None:
        self.backend, self.kwargs, self.image_embed, self.text_embed = backend, kwargs, image_embed, text_embed

    def reward(self, goal=GOAL, baseline=BASELINE, **kw) -> VLMReward:
        return VLMReward(goal, baseline, backend=self.backend, **{**self.kwargs, **kw})


def _tiny_open_clip(root: Path, as_file: bool) -> Tiny:
    folder = root / "open_clip_tiny"
    folder.mkdir(exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_OPEN_CLIP}))
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    model.eval()
    from safetensors.torch import save_file

    save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    if as_file:
        # A named architecture (as a built-in one would be) plus a weights file: the pretrained=<path> route.
        (root / "robot-rl-tiny-clip.json").write_text(json.dumps(TINY_OPEN_CLIP))
        open_clip.add_model_config(root / "robot-rl-tiny-clip.json")
        kwargs = {"model": "robot-rl-tiny-clip", "model_path": str(folder / "open_clip_model.safetensors")}
    else:
        kwargs = {"model_path": str(folder)}
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    from PIL import Image

    @torch.no_grad()
    def image_embed(frames):
        return model.encode_image(torch.stack([preprocess(Image.fromarray(f)) for f in frames]))

    @torch.no_grad()
    def text_embed(prompts):
        return model.encode_text(tokenizer(prompts))

    return Tiny("open_clip", kwargs, image_embed, text_embed)


def _word_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.Lowercase()
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                                   eos_token="<eos>", model_max_length=16), len(vocab)


def _tiny_transformers(root: Path, kind: str) -> Tiny:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, SiglipConfig, SiglipImageProcessor, SiglipModel

    folder = root / f"{kind}_tiny"
    tokenizer, vocab_size = _word_tokenizer()
    text = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=16, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    torch.manual_seed(0)
    if kind == "clip":
        model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=24))
        processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    else:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
        processor = SiglipImageProcessor(size={"height": 32, "width": 32})
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)

    def pooled(out):
        return out if torch.is_tensor(out) else out.pooler_output

    @torch.no_grad()
    def image_embed(frames):
        return pooled(model.get_image_features(pixel_values=processor(images=list(frames), return_tensors="pt")["pixel_values"]))

    @torch.no_grad()
    def text_embed(prompts):
        if kind == "siglip":
            t = tokenizer(prompts, padding="max_length", max_length=16, return_tensors="pt")
            return pooled(model.get_text_features(input_ids=t["input_ids"]))
        t = tokenizer(prompts, padding=True, return_tensors="pt")
        return pooled(model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"]))

    return Tiny("transformers", {"model_path": str(folder)}, image_embed, text_embed)


BACKENDS = ["open_clip_dir", "open_clip_file", "hf_clip", "hf_siglip"]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Tiny]:
    root = tmp_path_factory.mktemp("vlm")
    return {"open_clip_dir": _tiny_open_clip(root, as_file=False), "open_clip_file": _tiny_open_clip(root, as_file=True),
            "hf_clip": _tiny_transformers(root, "clip"), "hf_siglip": _tiny_transformers(root, "siglip")}


def _frames(n: int, seed: int = 0, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (1, size, size, 3))
    return np.clip(base + rng.integers(-60, 60, (n, size, size, 3)), 0, 255).astype(np.uint8)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float(), dim=-1)


@pytest.mark.parametrize("name", BACKENDS)
def test_alpha_zero_is_cosine_similarity_of_the_in_memory_model(tiny_models, name: str) -> None:
    """Weights loaded from disk by VLMReward reproduce the in-memory model; alpha = 0 is s . g."""
    tiny = tiny_models[name]
    frames = _frames(5)
    reward = tiny.reward(alpha=0.0)
    s, g = _unit(tiny.image_embed(frames)), _unit(tiny.text_embed([GOAL]))[0]
    np.testing.assert_allclose(reward.image_embeddings(frames).numpy(), s.numpy(), atol=1e-5)
    np.testing.assert_allclose(reward.goal.numpy(), g.numpy(), atol=1e-5)
    np.testing.assert_allclose(reward.rewards({"front": frames}), (s @ g).numpy(), atol=1e-5)
    rebuilt = make_reward_model(json.loads(json.dumps(reward.config())))
    np.testing.assert_allclose(rebuilt.rewards({"front": frames}), reward.rewards({"front": frames}), atol=1e-6)


@pytest.mark.parametrize("name", BACKENDS)
def test_alpha_one_keeps_only_the_goal_baseline_direction(tiny_models, name: str) -> None:
    tiny = tiny_models[name]
    reward = tiny.reward(alpha=1.0)
    frames = _frames(4, seed=1)
    g, b = reward.goal, reward.baseline
    d = _unit(g - b)
    s = reward.image_embeddings(frames)
    r = reward.rewards({"front": frames})
    # Closed form: P(s) - g = ((s - b) . d - ||g - b||) d.
    expected = 1 - 0.5 * (((s - b) @ d) - torch.linalg.norm(g - b)) ** 2
    np.testing.assert_allclose(r, expected.numpy(), atol=1e-5)
    # Moving s orthogonally to d changes nothing; moving it along d does.
    v = torch.randn(s.shape, generator=torch.Generator().manual_seed(0))
    v -= (v @ d)[:, None] * d
    np.testing.assert_allclose(goal_baseline_reward(s + 0.3 * v, g, b, 1.0).numpy(), r, atol=1e-5)
    assert not np.allclose(goal_baseline_reward(s + 0.3 * d, g, b, 1.0).numpy(), r, atol=1e-3)
    # alpha in between interpolates the embedding (not the reward), and alpha = 0 ignores b entirely.
    assert np.allclose(goal_baseline_reward(s + 0.3 * v, g, b, 0.0).numpy(), goal_baseline_reward(s + 0.3 * v, g, None, 0.0).numpy())


@pytest.mark.parametrize("name", BACKENDS)
def test_batch_of_eight_equals_eight_single_frames(tiny_models, name: str) -> None:
    reward = tiny_models[name].reward(alpha=0.5, batch_size=32)
    frames = _frames(8, seed=2)
    batched = reward.rewards({"front": frames})
    singles = np.concatenate([reward.rewards({"front": frames[i:i + 1]}) for i in range(8)])
    assert batched.shape == (8,) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    chunked = tiny_models[name].reward(alpha=0.5, batch_size=3).rewards({"front": frames})
    np.testing.assert_allclose(chunked, batched, atol=1e-5)


@pytest.mark.parametrize("name", ["open_clip_dir", "hf_clip", "hf_siglip"])
def test_several_prompts_average_their_normalised_embeddings(tiny_models, name: str) -> None:
    tiny = tiny_models[name]
    goals = [GOAL, "a picture of a lifted red cube"]
    reward = tiny.reward(goal=goals, alpha=0.0)
    e = _unit(tiny.text_embed(goals))
    expected = _unit(e.mean(0))
    np.testing.assert_allclose(reward.goal.numpy(), expected.numpy(), atol=1e-5)
    assert not np.allclose(e[0].numpy(), e[1].numpy(), atol=1e-3)  # the two prompts really differ
    frames = _frames(3, seed=3)
    s = _unit(tiny.image_embed(frames))
    np.testing.assert_allclose(reward.rewards({"front": frames}), (s @ expected).numpy(), atol=1e-5)


def test_several_cameras_average_their_rewards(tiny_models) -> None:
    tiny = tiny_models["open_clip_dir"]
    both = tiny.reward(cameras=["front", "wrist"])
    front, wrist = _frames(4, seed=4), _frames(4, seed=5, size=40)
    one = tiny.reward(cameras=["front"])
    expected = (one.rewards({"front": front}) + one.rewards({"front": wrist})) / 2
    np.testing.assert_allclose(both.rewards({"front": front, "wrist": wrist}), expected, atol=1e-5)
    with pytest.raises(ConfigError, match="wrist"):
        both.rewards({"front": front})


def test_missing_weights_fail_fast_with_instructions(tiny_models, tmp_path) -> None:
    start = time.monotonic()
    with pytest.raises(PretrainedWeightsError, match="model-path"):
        VLMReward(GOAL, BASELINE, backend="transformers", model="openai/clip-vit-base-patch32", cache_dir=str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match="model-path"):
        VLMReward(GOAL, BASELINE, model="ViT-B-32", pretrained="laion2b_s34b_b79k", cache_dir=str(tmp_path))
    with pytest.raises(PretrainedWeightsError, match="do not exist"):
        VLMReward(GOAL, BASELINE, model="ViT-B-32", model_path=str(tmp_path / "nope.safetensors"))
    assert time.monotonic() - start < 15.0
    # Weights of another architecture.
    other = tiny_models["open_clip_file"].kwargs["model_path"]
    with pytest.raises(PretrainedWeightsError, match="architecture"):
        VLMReward(GOAL, BASELINE, model="RN50", model_path=other)
    with pytest.raises(ConfigError, match="baseline"):
        VLMReward(GOAL, alpha=0.5, **tiny_models["open_clip_dir"].kwargs)
    with pytest.raises(ConfigError, match="alpha"):
        VLMReward(GOAL, BASELINE, alpha=1.5, **tiny_models["open_clip_dir"].kwargs)


def test_running_normalisation_statistics(tiny_models) -> None:
    tiny = tiny_models["hf_clip"]
    reward = tiny.reward(alpha=0.25, normalize=True)
    raw_model = tiny.reward(alpha=0.25)
    seen = []
    for seed in range(3):
        frames = _frames(5, seed=10 + seed)
        out = reward.rewards({"front": frames})
        raw = raw_model.rewards({"front": frames})
        seen.append(raw)
        everything = np.concatenate(seen)
        assert reward.stats.count == everything.size
        np.testing.assert_allclose(reward.stats.mean, everything.mean(), atol=1e-6)
        np.testing.assert_allclose(reward.stats.std, everything.std(), atol=1e-6)
        np.testing.assert_allclose(out, (raw - everything.mean()) / (everything.std() + 1e-6), rtol=1e-4, atol=1e-4)
    # The statistics travel with config(); a frozen copy leaves them alone.
    cfg = {**reward.config(), "update_stats": False}
    frozen = make_reward_model(cfg)
    frozen.rewards({"front": _frames(2, seed=20)})
    assert frozen.stats.state() == reward.stats.state()


def test_success_threshold_ends_a_pixel_episode_through_the_wrapper(tiny_models) -> None:
    tiny = tiny_models["open_clip_dir"]
    env = gym.make("robot_rl/PandaPickLiftPixels-v0", image_size=64)
    try:
        obs, _ = env.reset(seed=0)
        probe = tiny.reward(alpha=0.0)
        r0 = float(probe.rewards({"front": obs["images"]["front"][None]})[0])
        # Never reached (cosine similarity <= 1): the episode runs on.
        never = RewardModelWrapper(env, tiny.reward(alpha=0.0, success_threshold=1.01))
        never.reset(seed=0)
        for _ in range(3):
            _, r, terminated, _, info = never.step(np.zeros(env.action_space.shape, np.float32))
            assert not terminated and info["is_success"] is False and isinstance(r, float)
        # Reached on the first frame (random weights barely tell frames apart; the rewards stay within 0.1).
        wrapped = RewardModelWrapper(env, tiny.reward(alpha=0.0, success_threshold=r0 - 0.1, normalize=True))
        obs, _ = wrapped.reset(seed=0)
        obs, r, terminated, _, info = wrapped.step(np.zeros(env.action_space.shape, np.float32))
        assert terminated and info["is_success"] is True and "env_reward" in info
        raw = float(probe.rewards({"front": obs["images"]["front"][None]})[0])
        assert abs(raw - r0) < 0.1 and r == 0.0  # normalised by the single value seen so far
    finally:
        env.close()


def test_reward_node_publishes_the_in_process_reward_over_dds(ros_domain, tiny_models, tmp_path) -> None:
    """The reward node in its own process scores frames published here; /reward and
    /reward/success equal the in-process model's reward and verdict."""
    import threading

    from conftest import start_node, stop_node
    from robot_rl.ros.convert import camera_topics, image_msg
    from robot_rl.ros.node import Node

    tiny = tiny_models["open_clip_dir"]
    frame_a, frame_b = _frames(2, seed=30, size=64)
    probe = tiny.reward(alpha=0.5)
    r_a, r_b = (float(x) for x in probe.rewards({"front": np.stack([frame_a, frame_b])}))
    assert abs(r_a - r_b) > 1e-4
    model = tiny.reward(alpha=0.5, success_threshold=(r_a + r_b) / 2, device="cpu")
    expected = {"a": (r_a, r_a >= (r_a + r_b) / 2), "b": (r_b, r_b >= (r_a + r_b) / 2)}

    log = tmp_path / "reward_node.log"
    proc = start_node("robot_rl.rewards.node", "-p", f"model_config:={json.dumps(model.config())}", "-p", "rate_hz:=20.0",
                      log_path=str(log))
    node = Node("reward_test_client")
    rewards, successes = [], []
    lock = threading.Lock()

    def on_reward(msg):
        with lock:
            rewards.append(msg.data)

    def on_success(msg):
        with lock:
            successes.append(msg.data)

    node.create_subscription("std_msgs/msg/Float64", "/reward", on_reward)
    node.create_subscription("std_msgs/msg/Bool", "/reward/success", on_success)
    pub = node.create_publisher("sensor_msgs/msg/Image", camera_topics("front")["image"], "sensor")
    node.spin_in_thread()

    def publish_until(frame, reward, success, timeout_s):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            assert proc.poll() is None, log.read_text()[-3000:]
            pub.publish(image_msg(frame, time.time(), "front_color_optical_frame"))
            time.sleep(0.05)
            with lock:
                if any(abs(r - reward) < 1e-5 for r in rewards[-5:]) and success in successes[-5:]:
                    return True
        return False

    try:
        assert publish_until(frame_a, *expected["a"], timeout_s=60.0), (rewards[-5:], successes[-5:], expected, log.read_text()[-3000:])
        with lock:
            rewards.clear()
            successes.clear()
        assert publish_until(frame_b, *expected["b"], timeout_s=15.0), (rewards[-5:], successes[-5:], expected)
    finally:
        node.shutdown()
        code = stop_node(proc)
    assert code == 0, log.read_text()[-3000:]


def test_reward_node_without_weights_exits_with_an_error(ros_domain, tmp_path) -> None:
    from conftest import start_node

    cfg = {"kind": "vlm", "goal_prompts": [GOAL], "baseline_prompts": [BASELINE], "model": "ViT-B-32",
           "model_path": str(tmp_path / "missing.safetensors")}
    log = tmp_path / "reward_node.log"
    proc = start_node("robot_rl.rewards.node", "-p", f"model_config:={json.dumps(cfg)}", log_path=str(log))
    assert proc.wait(timeout=60) == 1
    assert "do not exist" in log.read_text()


def test_built_like_robot_rl_train_reward_vlm(tiny_models) -> None:
    """``robot-rl train --reward vlm --reward-model-path DIR --reward-kwargs ...`` builds the same model."""
    from robot_rl.envs import parse_env_kwargs
    from robot_rl.rewards.selection import build_reward_model

    tiny = tiny_models["open_clip_dir"]
    kwargs = parse_env_kwargs({"goal_prompts": json.dumps([GOAL]), "baseline_prompts": json.dumps([BASELINE]), "alpha": "0.25"})
    model = build_reward_model("vlm", Path(tiny.kwargs["model_path"]), kwargs)
    frames = _frames(3, seed=40)
    np.testing.assert_allclose(model.rewards({"front": frames}), tiny.reward(alpha=0.25).rewards({"front": frames}), atol=1e-6)
    assert model.config()["model_path"] == tiny.kwargs["model_path"]
