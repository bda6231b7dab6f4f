"""Observation layout, replay buffer and episode files, on real gymnasium spaces."""

import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.demos import EpisodeWriter, load_episode, load_episodes, save_episode
from robot_rl.errors import DemoFormatError, ObservationLayoutError
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.replay import ReplayBuffer, sample_mixed

H = W = 8
SPACE = spaces.Dict(
    state=spaces.Box(-1, 1, (3,), np.float32),
    images=spaces.Dict(front=spaces.Box(0, 255, (H, W, 3), np.uint8), wrist=spaces.Box(0, 255, (H, W, 3), np.uint8)),
    extra=spaces.Dict(grip=spaces.Box(0, 1, (), np.float32), mask=spaces.Box(0, 255, (2, 2), np.uint8)),
)


def make_obs(t: int) -> dict:
    """An observation whose every entry encodes the time step t (to check s' pairing)."""
    return {
        "state": np.full(3, t, np.float32),
        "images": {"front": np.full((H, W, 3), t % 256, np.uint8), "wrist": np.full((H, W, 3), (t + 1) % 256, np.uint8)},
        "extra": {"grip": np.float32(t), "mask": np.full((2, 2), t % 256, np.uint8)},
    }


def test_layout_splits_images_and_state():
    layout = ObsLayout.from_space(SPACE)
    assert layout.image_shapes == {"front": (H, W, 3), "wrist": (H, W, 3)}
    assert layout.state_dim == 1 + 4 + 3  # grip scalar, 2x2 uint8 mask (not an image), state
    state, images = layout.split(make_obs(7))
    assert state.dtype == np.float32 and state.shape == (8,) and np.all(state == 7)
    assert images["front"].dtype == np.uint8
    batched = {"state": np.zeros((5, 4, 3)), "images": {"front": np.zeros((5, 4, H, W, 3), np.uint8),
               "wrist": np.zeros((5, 4, H, W, 3), np.uint8)}, "extra": {"grip": np.zeros((5, 4)), "mask": np.zeros((5, 4, 2, 2))}}
    assert layout.split(batched)[0].shape == (5, 4, 8)


def test_layout_rejects_unusable_spaces():
    with pytest.raises(ObservationLayoutError, match="Discrete"):
        ObsLayout.from_space(spaces.Dict(a=spaces.Discrete(3)))
    with pytest.raises(ObservationLayoutError, match="unbounded"):
        ActionScaler.from_space(spaces.Box(-np.inf, np.inf, (2,)))
    with pytest.raises(ObservationLayoutError, match="1-D Box"):
        ActionScaler.from_space(spaces.Discrete(4))


def test_action_scaler_round_trip():
    sc = ActionScaler.from_space(spaces.Box(np.array([0.0, -2.0]), np.array([1.0, 2.0])))
    a = np.array([[-1.0, 0.0], [1.0, 0.5]], np.float32)
    np.testing.assert_allclose(sc.to_env(a), [[0.0, 0.0], [1.0, 1.0]])
    np.testing.assert_allclose(sc.from_env(sc.to_env(a)), a, atol=1e-6)


def fill(buf: ReplayBuffer, episodes: int, length: int, start: int = 0) -> int:
    t = start
    for _ in range(episodes):
        buf.start_episode(make_obs(t))
        for k in range(length):
            buf.add(np.full(2, t, np.float32), float(t), make_obs(t + 1), terminated=(k == length - 1))
            t += 1
        buf.end_episode()
        t += 1  # the final observation row is not a transition
    return t


def test_replay_pairs_next_obs_and_never_crosses_episodes():
    layout = ObsLayout.from_space(SPACE)
    buf = ReplayBuffer(layout, 2, capacity=23)  # odd size: forces wrap-around mid-episode
    fill(buf, episodes=9, length=4)
    rng = np.random.default_rng(0)
    b = buf.sample(500, rng)
    t = b.reward.numpy()
    assert np.all(b.obs.state.numpy()[:, 0] == t)
    assert np.all(b.next_obs.state.numpy()[:, 0] == t + 1)  # s' is the next step of the same episode
    assert np.all(b.next_obs.images["front"].numpy()[:, 0, 0, 0] == (t + 1) % 256)
    assert b.obs.images["wrist"].dtype.is_floating_point is False
    # only the newest transitions survive; every stored one is a real step
    assert len(buf) <= 23 and set(np.unique(t)).issubset(set(range(0, 9 * 5)))
    assert t.min() >= 9 * 5 - 23 - 1


def test_replay_bytes_per_transition_is_images_plus_small_state():
    layout = ObsLayout.from_space(SPACE)
    buf = ReplayBuffer(layout, 2, capacity=100)
    per_row = buf.nbytes / buf.capacity
    assert per_row == 2 * H * W * 3 + 4 * (8 + 2 + 1) + 3


def test_sample_mixed_ratio():
    layout = ObsLayout.from_space(SPACE)
    online, demo = ReplayBuffer(layout, 2, 200), ReplayBuffer(layout, 2, 200)
    fill(online, 5, 10, start=0)
    fill(demo, 5, 10, start=1000)
    b = sample_mixed(online, demo, 256, np.random.default_rng(1), demo_fraction=0.5)
    from_demo = (b.reward.numpy() >= 1000).sum()
    assert from_demo == 128
    b = sample_mixed(online, None, 64, np.random.default_rng(1))
    assert (b.reward.numpy() < 1000).all() and len(b.reward) == 64
    empty = ReplayBuffer(layout, 2, 10)
    assert (sample_mixed(empty, demo, 32, np.random.default_rng(2)).reward.numpy() >= 1000).all()


def test_episode_round_trip_is_lossless(tmp_path):
    w = EpisodeWriter(tmp_path, meta={"env_id": "test"})
    w.start(make_obs(0))
    for t in range(5):
        w.step(np.array([t, -t], np.float32), float(t) * 0.5, make_obs(t + 1), t == 4, False, intervention=t == 2, success=t == 4)
    p = w.finish(seed=3)
    ep = load_episode(p)
    assert len(ep) == 5 and ep.is_success and ep.meta == {"env_id": "test", "seed": 3}
    assert ep.observations["images"]["front"].shape == (6, H, W, 3) and ep.observations["images"]["front"].dtype == np.uint8
    np.testing.assert_array_equal(ep.observations["extra"]["grip"], np.arange(6, dtype=np.float32))
    np.testing.assert_array_equal(ep.intervention, [False, False, True, False, False])
    # a second writer on the same directory appends, never overwrites
    w2 = EpisodeWriter(tmp_path)
    w2.start(make_obs(0)); w2.step(np.zeros(2), 0.0, make_obs(1), True, False)
    assert w2.finish().name == "episode_000001.npz" and len(load_episodes(tmp_path)) == 2
    with pytest.raises(FileExistsError):
        save_episode(p, ep)
    # into a replay buffer
    buf = ReplayBuffer(ObsLayout.from_space(SPACE), 2, 50)
    buf.add_episode(ep.observations, ep.actions, ep.rewards, ep.terminated, ep.intervention)
    assert len(buf) == 5 and buf.intervention.sum() == 1


def test_corrupt_truncated_and_foreign_files_are_clear_errors(tmp_path):
    w = EpisodeWriter(tmp_path)
    w.start(make_obs(0)); w.step(np.zeros(2), 0.0, make_obs(1), True, False)
    good = w.finish().read_bytes()
    (tmp_path / "trunc.npz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DemoFormatError, match="corrupt or truncated"):
        load_episode(tmp_path / "trunc.npz")
    flipped = bytearray(good); flipped[len(good) // 3] ^= 0xFF
    (tmp_path / "flip.npz").write_bytes(bytes(flipped))
    with pytest.raises(DemoFormatError):
        load_episode(tmp_path / "flip.npz")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(DemoFormatError, match="not a robot_rl episode"):
        load_episode(tmp_path / "foreign.npz")
    with pytest.raises(DemoFormatError, match="does not exist"):
        load_episodes(tmp_path / "nope")
