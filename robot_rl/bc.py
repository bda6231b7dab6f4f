"""``robot-rl train-bc``: behaviour cloning of demos (and of a run's interventions) into a deployable policy.

The policy is the learner's own tanh-Gaussian actor (with its state normaliser and image encoder,
built from the same ``SACConfig`` network settings), trained by maximum likelihood of the demo
actions, so the result is an ordinary :class:`~robot_rl.policies.policy.Policy` directory:
``robot-rl eval --policy <out>/policy`` evaluates it and residual RL can use it as a base policy.

Data: every step of the demo episodes (a directory of episode files, :mod:`robot_rl.demos`, or
``num_demos`` scripted demos recorded into ``<out>/demos`` exactly as ``robot-rl train`` records
them), plus the intervention segments of training runs (``--interventions-from <run>``: the steps
a human or the scripted corrector chose, read from the run's replay log as the learner reads them
on ``--resume``). ``val_fraction`` of the episodes (each intervention segment counts as one) is
held out for validation; the other episodes train.

Outputs in ``out``: ``policy/`` (the best policy by validation loss, rewritten whenever it
improves, so an interrupted run keeps the best so far), ``bc_curve.csv`` (step, train_loss,
val_loss, val_mse, appended at every validation), ``bc_curve.png`` and ``results.json``.

Sources:
    The loss is the negative log-likelihood of the demo action under the tanh-squashed Gaussian
    (change of variables as in Haarnoja et al. 2018, arXiv:1812.05905, eq. 26): the BC objective
    of SAC-style actors, as in the BC pre-training of Cal-QL (Nakamoto et al. 2023, arXiv:2303.05479)
    and RoboFuME (Yang et al. 2023, arXiv:2310.15145), and the likelihood form of TD3+BC's
    behaviour-cloning term (Fujimoto & Gu 2021, arXiv:2106.06860). Early stopping on held-out
    episodes, keeping the best weights. DrQ random shifts for images: Kostrikov et al. 2020,
    arXiv:2004.13649.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from robot_rl.agent import SACConfig, random_shift, resolve_device
from robot_rl.envs import make_env, parse_env_kwargs
from robot_rl.errors import ConfigError, WireError
from robot_rl.evaluate import DEFAULT_EVAL_SEED
from robot_rl.layout import ActionScaler, ObsLayout
from robot_rl.policies.networks import tanh_gaussian_log_prob
from robot_rl.policies.policy import Policy, PolicyConfig, describe_layout
from robot_rl.validate import require_at_least, require_positive

#: fewer training episodes than this: BC generalises poorly (a warning says so)
MIN_BC_EPISODES = 5
#: demo actions are clipped to +-(1 - ACTION_EPS) in [-1, 1] units before atanh (finite pre-tanh targets)
ACTION_EPS = 1e-4
#: files train-bc writes into ``out`` (``--overwrite`` removes these and nothing else)
POLICY_DIR, CURVE_CSV, CURVE_PNG, RESULTS_FILE, DEMOS_DIR = "policy", "bc_curve.csv", "bc_curve.png", "results.json", "demos"
CURVE_COLUMNS = ("step", "train_loss", "val_loss", "val_mse")


@dataclass
class TrainBCConfig:
    """Behaviour cloning: train a policy on demos (and interventions) by maximum likelihood, then evaluate it."""

    out: Path
    """output directory (policy/, bc_curve.csv, bc_curve.png, results.json); must be new or empty unless --overwrite."""
    env: str = "robot_rl/PandaPickLift-v0"
    """gymnasium env ID the policy acts in (its spaces fix the observation layout and action bounds)."""
    env_kwargs: dict[str, str] = field(default_factory=dict)
    """keyword arguments of the env, e.g. --env-kwargs image_size 64 (values parsed as JSON when they can be)."""
    demos: Path | None = None
    """directory of demo episode files (robot-rl record-demos); None: record --num-demos scripted demos into <out>/demos."""
    num_demos: int = 20
    """scripted demos to record when --demos is not given (seeds as `robot-rl train --seed N` records them)."""
    interventions_from: tuple[Path, ...] = ()
    """training run directories whose intervention segments (from replay/log_*.rrl) are added to the data; read stopped runs, not running ones."""
    include_failures: bool = False
    """also clone demo episodes that never reached success (by default only successful ones are cloned)."""
    overwrite: bool = False
    """allow a non-empty --out: train-bc's own earlier outputs there are removed first, other files are kept."""
    seed: int = 1
    """seed of the network initialisation, the train/validation split, minibatches and augmentation."""
    batch_size: int = 256
    """transitions per gradient step."""
    lr: float = 3e-4
    """Adam learning rate of the actor and the image encoder."""
    max_steps: int = 20_000
    """gradient steps at most (early stopping may end sooner)."""
    val_fraction: float = 0.2
    """fraction of the episodes held out for validation (at least one episode)."""
    eval_every_steps: int = 500
    """compute the validation NLL and action MSE every N gradient steps (and at step 0 and the last step)."""
    select_on: Literal["val_mse", "val_nll"] = "val_mse"
    """validation metric that picks the kept (best) weights and drives early stopping: 'val_mse', the squared error of
    the deterministic action (what is deployed), or 'val_nll', the training loss. With few demos the held-out NLL
    grows once the policy's std shrinks while the action error still falls: pick-and-lift, 20 demos, 3k steps: val
    NLL -11 -> +560, val MSE 0.84 -> 0.39, success 0 -> 100 %."""
    patience: int = 10
    """stop when the --select-on metric has not improved for this many validations (0: never stop early); the best weights are kept."""
    eval_episodes: int = 20
    """env rollouts of the final (best) policy, deterministic; 0 skips the evaluation."""
    eval_seed: int = DEFAULT_EVAL_SEED
    """seed of the first evaluation episode (the `robot-rl eval` default, so both report the same episodes)."""
    device: str = "auto"
    """'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."""
    torch_threads: int = 0
    """torch intra-op threads; 0: this process's share of the cores (robot_rl.threads). Bit-identical reruns need a fixed N."""
    progress: bool = True
    """show a progress bar."""
    agent: SACConfig = field(default_factory=SACConfig)
    """network settings (hidden_dims, encoder, encoder_strides, encoder_channels, encoder_latent_dim, image_shift_pad,
    normalize_state); the RL-only fields are ignored. Use the settings of the RL run that will start from this policy."""


class BCData(NamedTuple):
    """Flat (observation, action) pairs of several episodes.

    Attributes:
        state: (N, S) float32 raw states. images: camera -> (N, H, W, 3) uint8.
        action: (N, A) float32 demo actions in [-1, 1] (the learner's units).
        episode: (N,) int64 index of the episode (or intervention segment) each row comes from.
    """

    state: np.ndarray
    images: dict[str, np.ndarray]
    action: np.ndarray
    episode: np.ndarray

    def __len__(self) -> int:
        return len(self.action)

    def subset(self, rows: np.ndarray) -> BCData:
        """The rows ``rows`` (a boolean mask or indices) as a new ``BCData``."""
        return BCData(self.state[rows], {k: v[rows] for k, v in self.images.items()}, self.action[rows],
                      self.episode[rows])

    @staticmethod
    def concat(parts: list[tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]], layout: ObsLayout,
               action_dim: int) -> BCData:
        """One ``BCData`` of episodes given as ``(state (T, S), images {cam: (T, H, W, 3)}, action (T, A))``."""
        if not parts:
            return BCData(np.zeros((0, layout.state_dim), np.float32),
                          {k: np.zeros((0, *s), np.uint8) for k, s in layout.image_shapes.items()},
                          np.zeros((0, action_dim), np.float32), np.zeros(0, np.int64))
        return BCData(np.concatenate([p[0] for p in parts]).astype(np.float32, copy=False),
                      {k: np.concatenate([p[1][k] for p in parts]) for k in layout.image_shapes},
                      np.concatenate([p[2] for p in parts]).astype(np.float32, copy=False),
                      np.concatenate([np.full(len(p[2]), i, np.int64) for i, p in enumerate(parts)]))


# ============================================================================ data
def load_demo_episodes(directory: Path, env_id: str, layout: ObsLayout, scaler: ActionScaler,
                       include_failures: bool = False) -> tuple[list[tuple[np.ndarray, dict, np.ndarray]], int]:
    """The demo episodes of ``directory`` as ``(state (T, S) float32, images {cam: (T, H, W, 3) uint8},
    action (T, A) float32 in [-1, 1])`` per episode, row t the observation the action a_t was chosen in.

    Args:
        directory: a dataset of episode files (:func:`robot_rl.demos.episode_files`) or a LeRobotDataset (v3).
        env_id: the env the policy is for (named in errors).
        layout / scaler: that env's observation layout and action bounds.
        include_failures: keep episodes without ``is_success``; otherwise they are left out.

    Returns:
        ``(episodes, skipped)``: the kept episodes and how many unsuccessful ones were left out.

    Raises:
        DemoFormatError: the directory holds no episode file or an unreadable one.
        ConfigError: an episode was recorded with another observation layout or action size (the
            message names the file and both layouts).
    """
    from robot_rl.lerobot_dataset import load_episodes_any

    out, skipped = [], 0
    for k, ep in enumerate(load_episodes_any(directory, layout, scaler, env_id)):  # episode files or a LeRobotDataset
        path = ep.meta.get("path", f"{directory} (episode {k})")
        ep_layout = ObsLayout.from_recorded(ep.observations)
        action_dim = int(ep.actions.shape[1]) if ep.actions.ndim == 2 else -1
        if ep_layout != layout or action_dim != scaler.dim:
            raise ConfigError(
                f"demo episode {path} does not fit {env_id}:\n  demo: {describe_layout(ep_layout)}; actions A={action_dim}\n"
                f"  env:  {describe_layout(layout, scaler)}\nThe demo was recorded in {ep.meta.get('env_id', '?')} with env "
                f"kwargs {ep.meta.get('env_kwargs', {})}: pass that --env / --env-kwargs, or record demos for {env_id} "
                "(robot-rl record-demos --env ...; pixel env IDs need pixel demos)")
        if not (ep.is_success or include_failures):
            skipped += 1
            continue
        state, images = layout.split(ep.observations)
        out.append((state[:-1], {k: v[:-1] for k, v in images.items()}, scaler.from_env(ep.actions)))
    return out, skipped


def intervention_segments(run_dir: Path, layout: ObsLayout, scaler: ActionScaler
                          ) -> list[tuple[np.ndarray, dict, np.ndarray]]:
    """The intervention segments of a training run, each ``(state (T, S) float32, images
    {cam: (T, H, W, 3) uint8}, action (T, A) float32 in [-1, 1])``.

    The run's replay log (``replay/log_*.rrl``) is read (read only) with :func:`~robot_rl.transport.records.read_log`
    and its chunks go through the learner's :class:`~robot_rl.learner.ChunkInserter`, which puts
    the runs of consecutive intervention steps into a demo buffer exactly as training does; each
    such run is one segment here. Read a stopped run: opening the log repairs a torn last record.

    Raises:
        ConfigError: ``run_dir`` has no replay log, or its chunks do not fit the layout (another env).
    """
    from robot_rl.learner import ChunkInserter
    from robot_rl.replay import ReplayBuffer
    from robot_rl.transport.messages import TransitionChunk
    from robot_rl.transport.records import read_log
    from robot_rl.transport.wire import decode

    replay = Path(run_dir) / "replay"
    if not any(replay.glob("log_*.rrl")):
        raise ConfigError(f"--interventions-from {run_dir}: no replay log {replay}/log_*.rrl; pass the run directory "
                          "`robot-rl train` or `robot-rl learner` printed")
    dims = (layout.state_dim, layout.image_shapes, scaler.dim)

    def chunks():  # each pass reads the log again, read only (a learner may still be appending)
        for frames in read_log(replay):
            try:
                yield TransitionChunk.from_message(decode(frames), *dims)
            except WireError as e:
                raise ConfigError(f"the replay log of {run_dir} does not fit the env ({describe_layout(layout, scaler)}): "
                                  f"{e}. Pass the run's --env and --env-kwargs (see its config.json)") from e

    longest, rows = 1, 1  # first pass: buffer sizes (a row per intervention step plus one per segment start)
    for c in chunks():
        longest = max(longest, len(c))
        flags = np.asarray(c.intervention, np.int8)
        rows += int(flags.sum()) + int(np.count_nonzero(np.diff(flags, prepend=0) == 1))
    if rows == 1:
        return []
    demo = ReplayBuffer(layout, scaler.dim, rows + 1)
    inserter = ChunkInserter(ReplayBuffer(layout, scaler.dim, longest + 2), demo)  # online rows: a ring, unused
    for c in chunks():
        inserter.insert(c)
    n = demo.stored_states().shape[0]
    valid = demo.valid[:n]
    starts = np.flatnonzero(valid & ~np.concatenate([[False], valid[:-1]]))
    segments = []
    for s in starts:
        e = s
        while e < n and valid[e]:
            e += 1
        segments.append((demo.state[s:e].copy(), {k: v[s:e].copy() for k, v in demo.images.items()},
                         demo.action[s:e].copy()))
    return segments


def split_episodes(num_episodes: int, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random split of episode indices: ``(train, val)`` int64 arrays, ``max(1, round(val_fraction * n))``
    validation episodes.

    Raises:
        ConfigError: fewer than 2 episodes (one must train and one validate).
    """
    if num_episodes < 2:
        raise ConfigError(f"behaviour cloning needs at least 2 episodes (one is held out for validation), got "
                          f"{num_episodes}; record more demos (--num-demos, robot-rl record-demos)")
    order = rng.permutation(num_episodes)
    n_val = min(num_episodes - 1, max(1, round(val_fraction * num_episodes)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


# ============================================================================ loss
def _bc_terms(policy: Policy, state: torch.Tensor, images: dict[str, torch.Tensor], action: torch.Tensor,
              shift_pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) NLL in nats and (B,) squared error of tanh(mean), summed over action dims, for one batch."""
    # the policy's own feature path (SACAgent.features with augment=True when shift_pad > 0)
    feats = policy.features(state, {k: random_shift(v, shift_pad) for k, v in images.items()})
    mean, log_std = policy.actor.dist_params(feats)
    target = action.clamp(-1.0 + ACTION_EPS, 1.0 - ACTION_EPS)
    nll = -tanh_gaussian_log_prob(torch.atanh(target), mean, log_std)
    return nll, (torch.tanh(mean) - action).pow(2).sum(-1)


@torch.no_grad()
def validation_loss(policy: Policy, data: dict[str, Any], batch_size: int) -> tuple[float, float]:
    """Mean NLL (nats per transition) and mean squared error of the deterministic action (summed over
    action dims, [-1, 1] units) over all rows of ``data`` (tensors on the policy's device), no augmentation."""
    n = int(data["action"].shape[0])
    nll_sum = mse_sum = 0.0
    for lo in range(0, n, batch_size):
        sl = slice(lo, lo + batch_size)
        nll, se = _bc_terms(policy, data["state"][sl], {k: v[sl] for k, v in data["images"].items()},
                            data["action"][sl], 0)
        nll_sum += float(nll.sum())
        mse_sum += float(se.sum())
    return nll_sum / n, mse_sum / n


# ============================================================================ outputs
def _prepare_out(cfg: TrainBCConfig) -> Path:
    """Create ``out``; refuse a non-empty one unless ``--overwrite`` (then remove train-bc's own outputs)."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a directory")
    if out.is_dir() and any(out.iterdir()):
        if not cfg.overwrite:
            raise ConfigError(f"--out {out} exists and is not empty; choose a new directory or pass --overwrite "
                              "(which replaces train-bc's outputs there)")
        for name in (POLICY_DIR, f".{POLICY_DIR}.tmp", f".{POLICY_DIR}.old", CURVE_CSV, CURVE_PNG, RESULTS_FILE, DEMOS_DIR):
            path = out / name
            own_demos = name == DEMOS_DIR and cfg.demos is None  # recorded by an earlier train-bc: record again
            if name == DEMOS_DIR and not own_demos:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_policy_atomic(policy: Policy, directory: Path, metadata: dict[str, Any]) -> Path:
    """``policy.save`` into a temporary sibling directory, then swap it in with renames, so
    ``directory`` always holds a complete policy (a crash between the two renames leaves the
    previous one complete in ``.<name>.old``). Returns ``directory``."""
    tmp = directory.with_name(f".{directory.name}.tmp")
    old = directory.with_name(f".{directory.name}.old")
    for stale in (tmp, old):
        if stale.exists():
            shutil.rmtree(stale)
    policy.save(tmp, metadata)
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    if old.exists():
        shutil.rmtree(old)
    return directory


def write_bc_curve(curve_csv: Path, path: Path, title: str = "") -> Path:
    """Plot train and validation NLL (left, symlog: the held-out NLL can grow by orders of magnitude)
    and the validation action MSE (right) against gradient steps from ``bc_curve.csv``; returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(curve_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=120)
    train = [(s, float(r["train_loss"])) for s, r in zip(steps, rows) if r["train_loss"] != ""]
    if train:
        ax.plot(*zip(*train), "-", color="tab:blue", label="train NLL")
    ax.plot(steps, [float(r["val_loss"]) for r in rows], "o-", color="tab:orange", markersize=3, label="validation NLL")
    ax.set_yscale("symlog")
    ax.set_xlabel("gradient steps")
    ax.set_ylabel("NLL (nats per step)")
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.plot(steps, [float(r["val_mse"]) for r in rows], "s--", color="tab:green", markersize=3, alpha=0.8,
             label="validation action MSE")
    ax2.set_ylabel("validation action MSE", color="tab:green")
    ax2.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="best", fontsize="small")
    ax.set_title(title or "behaviour cloning")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ============================================================================ training
def check_bc_config(cfg: TrainBCConfig) -> None:
    """Reject settings that make no sense, each with one :class:`ConfigError` naming the flag."""
    for flag, value, minimum, hint in (
            ("--num-demos", cfg.num_demos, 0, ""), ("--seed", cfg.seed, 0, ""), ("--batch-size", cfg.batch_size, 1, ""),
            ("--max-steps", cfg.max_steps, 1, ""), ("--eval-every-steps", cfg.eval_every_steps, 1, ""),
            ("--patience", cfg.patience, 0, "0 never stops early"), ("--eval-episodes", cfg.eval_episodes, 0, "0 skips it"),
            ("--eval-seed", cfg.eval_seed, 0, ""), ("--torch-threads", cfg.torch_threads, 0, ""),
            ("--agent.hidden-dims", cfg.agent.hidden_dims, 1, "every layer needs a width"),
            ("--agent.image-shift-pad", cfg.agent.image_shift_pad, 0, "")):
        require_at_least(flag, value, minimum, hint)
    require_positive("--lr", cfg.lr)
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in (0, 1), got {cfg.val_fraction}")
    if cfg.demos is None and cfg.num_demos == 0 and not cfg.interventions_from:
        raise ConfigError("no data: pass --demos <dir>, --num-demos N (> 0) or --interventions-from <run>")
    if cfg.agent.residual_scale != 0:
        raise ConfigError(f"--agent.residual-scale {cfg.agent.residual_scale}: behaviour cloning trains an ordinary "
                          "policy; leave it at 0 (a BC policy can be the base policy of a residual RL run)")


def train_bc(cfg: TrainBCConfig) -> dict[str, Any]:
    """``robot-rl train-bc``: :func:`train_bc_policy` without the in-memory policy; returns the summary."""
    return train_bc_policy(cfg)[1]


def train_bc_policy(cfg: TrainBCConfig) -> tuple[Policy, dict[str, Any]]:
    """Train a behaviour-cloning policy (see the module docstring) and evaluate it.

    Returns:
        ``(policy, summary)``: the policy with the best weights (in eval mode, on ``cfg.device``;
        ``<out>/policy`` holds the same), and the summary (also in ``results.json``): ``out``,
        ``policy``, data counts (``demo_episodes``, ``intervention_segments``, ``train_episodes``,
        ``val_episodes``, ``train_transitions``, ``val_transitions``),
        ``steps``, ``best_step`` (picked by ``select_on``), ``initial_val_loss`` / ``initial_val_mse`` (step 0),
        ``min_val_loss``, ``best_val_loss`` and ``best_val_mse`` (at ``best_step``),
        ``stopped_early``, ``train_s``, and with ``eval_episodes > 0`` ``eval_success_rate``,
        ``eval_mean_return``, ``eval_mean_length`` (see :func:`robot_rl.evaluate.evaluate`).

    Raises:
        ConfigError: bad settings, an existing ``out`` without ``--overwrite``, demos or run logs of
            another layout, fewer than two episodes.
        DemoFormatError: a demo file is unreadable.
    """
    from robot_rl.evaluate import evaluate
    from robot_rl.record import load_demo_buffer
    from robot_rl.threads import ThreadShare

    check_bc_config(cfg)
    env_kwargs = parse_env_kwargs(cfg.env_kwargs)
    env = make_env(cfg.env, **env_kwargs)
    layout, scaler = ObsLayout.from_space(env.observation_space), ActionScaler.from_space(env.action_space)
    env.close()
    device = resolve_device(cfg.device)
    out = _prepare_out(cfg)
    threads = ThreadShare(cfg.torch_threads, "bc")
    say = tqdm.write if cfg.progress else (lambda _text: None)
    try:
        # ---------------------------------------------------------------- data
        demo_dir = cfg.demos
        if demo_dir is None and cfg.num_demos > 0:
            demo_dir = out / DEMOS_DIR  # recorded as `robot-rl train --seed N` records a run's demos
            load_demo_buffer(cfg.env, cfg.env_kwargs, None, cfg.num_demos, out, cfg.seed, layout, scaler,
                             progress=cfg.progress)
        episodes, skipped = (load_demo_episodes(demo_dir, cfg.env, layout, scaler, cfg.include_failures)
                             if demo_dir is not None else ([], 0))
        if skipped:
            say(f"train-bc: left out {skipped} unsuccessful demo episodes of {demo_dir} (--include-failures keeps them)")
        num_demo_episodes = len(episodes)
        for run in cfg.interventions_from:
            segments = intervention_segments(run, layout, scaler)
            say(f"train-bc: {len(segments)} intervention segments ({sum(len(s[2]) for s in segments)} steps) from {run}")
            episodes += segments
        data = BCData.concat(episodes, layout, scaler.dim)
        rng = np.random.default_rng(cfg.seed)
        train_eps, val_eps = split_episodes(len(episodes), cfg.val_fraction, rng)
        train, val = data.subset(np.isin(data.episode, train_eps)), data.subset(np.isin(data.episode, val_eps))
        if len(train_eps) < MIN_BC_EPISODES:
            text = (f"behaviour cloning on {len(train_eps)} training episodes (fewer than {MIN_BC_EPISODES}); BC "
                    "generalises poorly with so few: record more demos")
            say(f"train-bc: {text}")
            warnings.warn(text, stacklevel=2)
        say(f"train-bc: {len(train_eps)} training episodes ({len(train)} steps), {len(val_eps)} validation "
            f"episodes ({len(val)} steps); {describe_layout(layout, scaler)}")

        # ---------------------------------------------------------------- model
        torch.manual_seed(cfg.seed)
        net = PolicyConfig.from_agent_config(cfg.agent)
        policy = Policy.build(layout, scaler, net, device)  # fresh modules: actor, encoder, identity normaliser
        policy.requires_grad_(True)
        if policy.encoder is not None and policy.encoder.frozen:
            policy.encoder.backbone.requires_grad_(False)  # resnet18: only the projection trains
        if cfg.agent.normalize_state and layout.state_dim and len(train) >= 2:
            policy.state_norm.fit(torch.from_numpy(train.state).to(device),
                                  identity_dims=layout.base_action_index or ())
        params = [p for p in policy.parameters() if p.requires_grad]
        optim = torch.optim.Adam(params, lr=cfg.lr)

        def on_device(d: BCData) -> dict[str, Any]:
            return {"state": torch.from_numpy(d.state).to(device), "action": torch.from_numpy(d.action).to(device),
                    "images": {k: torch.from_numpy(v).to(device) for k, v in d.images.items()}}

        train_t, val_t = on_device(train), on_device(val)
        metadata = {"env": cfg.env, "env_kwargs": dict(cfg.env_kwargs), "source": "bc", "seed": cfg.seed,
                    "demos": str(demo_dir) if demo_dir is not None else None, "demo_episodes": num_demo_episodes,
                    "interventions_from": [str(p) for p in cfg.interventions_from],
                    "train_episodes": len(train_eps), "val_episodes": len(val_eps)}

        # ---------------------------------------------------------------- training
        with open(out / CURVE_CSV, "w", newline="") as f:
            csv.writer(f).writerow(CURVE_COLUMNS)
        t0 = time.perf_counter()
        best = {"val_loss": math.nan, "val_mse": math.nan, "score": math.inf, "step": 0, "params": None}
        initial_val_loss = initial_val_mse = min_val_loss = math.nan
        bad_validations, stopped_early, step, losses = 0, False, 0, []

        def validate() -> None:
            nonlocal initial_val_loss, initial_val_mse, min_val_loss, bad_validations, stopped_early
            policy.eval()
            val_loss, val_mse = validation_loss(policy, val_t, 4 * cfg.batch_size)
            policy.train()
            train_loss = float(np.mean(losses)) if losses else ""
            losses.clear()
            with open(out / CURVE_CSV, "a", newline="") as f:
                csv.writer(f).writerow([step, train_loss, val_loss, val_mse])
            if step == 0:
                initial_val_loss, initial_val_mse = val_loss, val_mse
            min_val_loss = val_loss if math.isnan(min_val_loss) else min(min_val_loss, val_loss)
            score = val_mse if cfg.select_on == "val_mse" else val_loss
            if score < best["score"]:
                best.update(val_loss=val_loss, val_mse=val_mse, score=score, step=step, params=policy.params())
                save_policy_atomic(policy, out / POLICY_DIR, {**metadata, "best_val_loss": val_loss,
                                                              "best_val_mse": val_mse, "bc_step": step})
                bad_validations = 0
            else:
                bad_validations += 1
                stopped_early = cfg.patience > 0 and bad_validations >= cfg.patience
            bar.set_postfix(val_nll=f"{val_loss:.3f}", val_mse=f"{val_mse:.3f}", best_step=best["step"], refresh=False)
            threads.refresh()

        bar = tqdm(total=cfg.max_steps, desc="train-bc", unit="step", disable=not cfg.progress, dynamic_ncols=True)
        policy.train()
        validate()
        n_train, pad = len(train), cfg.agent.image_shift_pad
        while step < cfg.max_steps and not stopped_early:
            idx = torch.from_numpy(rng.integers(0, n_train, size=cfg.batch_size)).to(device)
            nll, _ = _bc_terms(policy, train_t["state"][idx], {k: v[idx] for k, v in train_t["images"].items()},
                               train_t["action"][idx], pad)
            loss = nll.mean()
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            if step % cfg.eval_every_steps == 0 or step == cfg.max_steps:
                validate()
        bar.close()
        train_s = time.perf_counter() - t0
        if best["params"] is None:
            raise ConfigError(f"the validation {cfg.select_on} was NaN at every validation (diverged); lower --lr")
        policy.load_params(best["params"])  # the best weights (they are also what policy/ holds)
        policy.eval().requires_grad_(False)
        summary: dict[str, Any] = {
            "out": str(out), "policy": str(out / POLICY_DIR), "env": cfg.env, "env_kwargs": dict(cfg.env_kwargs),
            "demos": metadata["demos"], "demo_episodes": num_demo_episodes,
            "intervention_segments": len(episodes) - num_demo_episodes, "skipped_failed_demos": skipped,
            "train_episodes": len(train_eps), "val_episodes": len(val_eps),
            "train_transitions": len(train), "val_transitions": len(val), "steps": step, "best_step": best["step"],
            "select_on": cfg.select_on, "initial_val_loss": initial_val_loss, "initial_val_mse": initial_val_mse,
            "min_val_loss": min_val_loss, "best_val_loss": best["val_loss"], "best_val_mse": best["val_mse"],
            "stopped_early": stopped_early, "train_s": round(train_s, 1), "device": str(device)}
        summary["curve"] = str(write_bc_curve(out / CURVE_CSV, out / CURVE_PNG, title=f"BC on {cfg.env}"))

        # ---------------------------------------------------------------- evaluation
        if cfg.eval_episodes > 0:
            env = make_env(cfg.env, **env_kwargs)
            try:
                result = evaluate(policy, env, cfg.eval_episodes, seed=cfg.eval_seed)
            finally:
                env.close()
            summary.update({"eval_episodes": cfg.eval_episodes, "eval_seed": cfg.eval_seed,
                            **{f"eval_{k}": v for k, v in result.items()}})
        (out / RESULTS_FILE).write_text(json.dumps(summary, indent=2))
        return policy, summary
    finally:
        threads.close()
