"""``robot-rl train``: the learner and one actor loop in one process, joined in memory.

The same two objects as ``robot-rl learner`` + ``robot-rl actor`` (:class:`robot_rl.learner.Learner`,
:class:`robot_rl.actor.ActorLoop`), with the transport replaced by a direct hand-over in one
thread. Per env step: the actor acts (uniform random for the first ``random_steps``, then the
stochastic policy, which shares the learner's networks) and hands over the step (``chunk_steps``
is 1 here, so the policy is never stale); the learner appends it to the replay log, inserts it
into its buffers, and runs ``update_ratio`` updates (each ``agent.utd_ratio`` gradient steps on a
batch drawn ``demo_fraction`` from demos and the rest online: RLPD). At episode ends it evaluates
every ``eval_every_steps`` and checkpoints every ``checkpoint_every_steps``; the checkpoint holds
the actor loop's state too, so ``--resume`` continues exactly as if never stopped.

With ``--pretrain.steps N`` the learner first pretrains on the demos alone (Cal-QL,
:meth:`robot_rl.learner.Learner.pretrain`), then the loop above fine-tunes with the same networks
(RLPD, or WSRL with ``--pretrain.online wsrl``); the pretrained policy acts from the first env
step, so ``--random-steps`` must be 0 then.

With ``--teleop scripted`` the scripted corrector (:class:`robot_rl.sim.corrector.ScriptedCorrector`)
takes over when the policy stalls, as a human would with a teleop device (``--teleop keyboard``
etc.): the executed action is what is stored, and intervention transitions go to both the online
and the demo buffer (HIL-SERL, Luo et al. 2024, arXiv:2410.21845). Evaluation never intervenes.

``--reward`` picks the reward source (:mod:`robot_rl.rewards.selection`): the env's own,
``sparse`` / ``dense`` (the sims' ``reward_type``), ``classifier`` / ``vlm`` (a reward model from
the camera frames, ending episodes on the model's success; saved with the run as ``reward.json``
(+ ``reward_model/``) and rebuilt on ``--resume`` and by ``robot-rl eval``; demo rewards and
terminations are relabelled by the model too), or ``intervention`` (RLIF). With a reward model
``evals.csv``'s ``env_success_rate`` is the env's privileged success, logged for evaluation only.

The run directory has the layout of :mod:`robot_rl.learner` (one format for both modes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from tqdm import tqdm

from robot_rl.actor import ActorLoop, ActorSettings, build_actor_env, check_actor_settings
from robot_rl.envs import parse_env_kwargs
from robot_rl.errors import ConfigError
from robot_rl.learner import LearnConfig, Learner, check_learn_config, resolve_run
from robot_rl.validate import require_at_least


@dataclass
class TrainConfig(ActorSettings, LearnConfig):
    """Train a SAC/RLPD policy on a gymnasium env in one process (learner and actor loop in memory)."""

    chunk_steps: int = 1
    """steps per hand-over to the learner; 1 (the default) updates after every step, so the policy never lags."""
    stop_at_success: float = 0.0
    """stop early once an evaluation reaches this success rate (0: never stop early)."""
    final_video: bool = True
    """write an mp4 of one evaluation episode and the learning-curve PNG at the end."""


class Trainer:
    """``robot-rl train`` (see the module docstring).

    Attributes:
        learner: the :class:`~robot_rl.learner.Learner`. actor: the :class:`~robot_rl.actor.ActorLoop`.

    Raises:
        ConfigError: bad settings (unknown env, impossible sizes, degenerate counts).
        CheckpointError / RunDirectoryExistsError: see :mod:`robot_rl.runs` and
            :func:`robot_rl.learner.resolve_run` (an old-format run given to ``--resume``).
    """

    def __init__(self, cfg: TrainConfig) -> None:
        from robot_rl.rewards.selection import (MODEL_REWARDS, build_reward_model, load_run_reward,
                                               relabel_episode, save_run_reward, wrap_with_reward)
        from robot_rl.envs import make_env

        cfg, run_dir = resolve_run(cfg, "train")
        require_at_least("--total-env-steps", cfg.total_env_steps, 1)
        if not 0.0 <= cfg.stop_at_success <= 1.0:
            raise ConfigError(f"--stop-at-success must be in [0, 1] (0: never stop early), got {cfg.stop_at_success}")
        check_learn_config(cfg)
        env_kwargs = check_actor_settings(cfg)
        if cfg.pretrain.steps and cfg.random_steps:
            raise ConfigError(f"--random-steps {cfg.random_steps} would act uniformly at random instead of the policy "
                              f"that --pretrain.steps {cfg.pretrain.steps} pretrains; pass --random-steps 0 "
                              "(the pretrained policy acts from the first env step)")
        self.cfg = cfg
        # the reward model: rebuilt from the run on --resume, else from the flags (saved with the run below)
        self.reward_model = (load_run_reward(run_dir) if run_dir is not None else
                             build_reward_model(cfg.reward, cfg.reward_model_path, parse_env_kwargs(cfg.reward_kwargs))
                             if cfg.reward in MODEL_REWARDS else None)
        model = self.reward_model
        if cfg.reward_feedback.enabled and (cfg.reward != "classifier" or cfg.teleop == "none"):
            raise ConfigError("--reward-feedback.enabled retrains the success classifier on the operator's false-success "
                              "labels: it needs --reward classifier and a --teleop whose failure button gives them "
                              "(keyboard, gamepad, spacemouse, ros; scripted in sim: the privileged check)")
        if cfg.reward_feedback.enabled:
            from robot_rl.rewards.feedback import base_training_settings

            base_training_settings(model, cfg.reward_feedback)  # its training episodes must be there to retrain on
        env, teleop = build_actor_env(cfg, model)  # first: a bad env or teleop is refused before the run exists
        try:
            self.learner = Learner(
                cfg, run_dir, "train",
                relabel=None if model is None else partial(relabel_episode, model=model),
                make_eval_env=lambda render: wrap_with_reward(make_env(cfg.env, render=render, **env_kwargs), model),
                reward_model=model)
        except BaseException:
            env.close()
            raise
        if run_dir is None:
            save_run_reward(self.learner.run_dir, model)
        self.actor = ActorLoop(env, cfg, teleop)
        if self.actor.view is not None:  # the critic is in this process: the view logs Q(s, a) of each step
            from robot_rl.view import critic_q_value

            self.actor.q_value = critic_q_value(self.learner.agent)
        if "actor" in self.learner.restored:
            self.actor.load_state_dict(self.learner.restored["actor"])

    @property
    def run_dir(self):
        """The run directory."""
        return self.learner.run_dir

    def run(self) -> dict[str, Any]:
        """Pretrain (``--pretrain.steps``), then train online until ``total_env_steps``; returns the
        final evaluation and where things are."""
        cfg, lr, actor = self.cfg, self.learner, self.actor
        lr.pretrain()  # offline phase first (a no-op without --pretrain.steps or when already done)
        bar = tqdm(total=cfg.total_env_steps, initial=lr.received, desc="train", unit="step",
                   disable=not cfg.progress, dynamic_ncols=True)
        while lr.received < cfg.total_env_steps:
            chunk, done = actor.step(lr.policy, params_version=lr.updates)
            if chunk is not None:
                chunk.actor, chunk.seq = "train", lr.log_records + 1
                lr.ingest(chunk)
            while lr.update_due():
                lr.update()
            bar.update(1)
            if not done:
                continue
            result = lr.episode_boundary(actor_state=actor.state_dict())
            postfix = {"ep": lr.episodes, "succ20": f"{lr.success_rate_20():.2f}", "updates": lr.updates}
            if cfg.teleop != "none":
                postfix.update(interv_steps=lr.intervention_steps, takeovers=lr.takeovers)
            if result is not None:
                postfix["eval"] = f"{result['success_rate']:.2f}"
            bar.set_postfix(postfix)
            if cfg.stop_at_success > 0 and result is not None and result["success_rate"] >= cfg.stop_at_success:
                break
        bar.close()
        partial_chunk = actor.take_partial()
        if partial_chunk is not None:  # keep the last, unfinished episode's steps in the log too
            partial_chunk.actor, partial_chunk.seq = "train", lr.log_records + 1
            lr.ingest(partial_chunk)
        actor.abandon_episode()  # a resume starts the next episode (the cut one stays in the log as it is)
        return lr.finish(final_eval=True, video=cfg.final_video, actor_state=actor.state_dict())

    def close(self) -> None:
        """Close the live view, the env and the learner's logs."""
        self.actor.close()
        self.actor.env.close()
        self.learner.close()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Build a :class:`Trainer`, run it, close it; returns the summary dict."""
    trainer = Trainer(cfg)
    try:
        return trainer.run()
    finally:
        trainer.close()

if __name__ == "__main__":  # `python -m robot_rl.train ...`: the same flags as `robot-rl train`
    import tyro

    for key, value in train(tyro.cli(TrainConfig)).items():
        print(f"{key}: {value}")
