"""Offline pretraining for offline-to-online RL: the CQL / Cal-QL critic regulariser and its settings.

A run with ``--pretrain.steps N`` first trains the SAC/RLPD agent for ``N`` updates on the demo
buffer alone with the Cal-QL critic loss (TD loss + ``cql_alpha`` * the regulariser below), then
fine-tunes online with the same networks: RLPD as without pretraining (RoboFuME's recipe), or WSRL
(a warm-up rollout of the pretrained policy, then online updates without the offline data).
:class:`robot_rl.learner.Learner` runs the phases; :meth:`robot_rl.agent.SACAgent.update` adds
the regulariser when given a :class:`PretrainConfig`.

Sources:
    Kumar et al. 2020, "Conservative Q-Learning for Offline Reinforcement Learning" (CQL),
    arXiv:2006.04779: the CQL(H) regulariser, importance-sampled logsumexp over uniform and
    policy actions (appendix F).
    Nakamoto et al. 2023, "Cal-QL: Calibrated Offline RL Pre-Training for Efficient Online
    Fine-Tuning", arXiv:2303.05479, reference github.com/nakamotoo/Cal-QL
    (``JaxCQL/conservative_sac.py``: the regulariser; ``JaxCQL/replay_buffer.py``
    ``calc_return_to_go``: the Monte-Carlo lower bound).
    Yang et al. 2023, "Robot Fine-Tuning Made Easy" (RoboFuME), arXiv:2310.08558: Cal-QL
    pretraining on demos, then online fine-tuning.
    Zhou et al. 2024, "Efficient Online Reinforcement Learning Fine-Tuning Need Not Retain
    Offline Data" (WSRL), arXiv:2412.07762.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass
class PretrainConfig:
    """Offline pretraining (Cal-QL / CQL) on the demo buffer before any env step, and the online phase after it."""

    steps: int = 0
    """offline agent updates on the demo buffer before the first env step (each one SACAgent.update: agent.utd_ratio critic steps with the Cal-QL loss, then one actor and temperature step); 0: no pretraining (RLPD from scratch). Measured on PandaPickLift-v0 from state, 10 scripted demos, default agent, seed 1, 10 evaluation episodes: success 0 untrained, 0.3 / 0.6 / 0.7 / 0.8 / 0.8 / 1.0 after 250 / 500 / 1,000 / 1,500 / 2,000 / 3,000 updates, at 1-2.8 updates/s on one CPU thread (a shared 2-core machine); 2,000 is a sensible benchmark setting."""
    cql_alpha: float = 5.0
    """weight of the CQL regulariser in the critic loss (Cal-QL / CQL 'min_q_weight'). Cal-QL uses 5 for its sparse-reward tasks (AntMaze) and 1 for Adroit; ours are sparse 0/1 rewards from few narrow demos, AntMaze's regime, so 5."""
    cql_num_actions: int = 10
    """N: uniform, policy-at-s and policy-at-s' actions sampled per state for the logsumexp (CQL / Cal-QL: 10)."""
    cql_temperature: float = 1.0
    """temperature of the logsumexp (CQL / Cal-QL: 1)."""
    calibrated: bool = True
    """Cal-QL: bound the Q of the policy actions from below by the Monte-Carlo return-to-go of the state in the regulariser; False: plain CQL(H)."""
    checkpoint_every_updates: int = 1_000
    """checkpoint every N pretraining updates (and at the end of pretraining)."""
    online: Literal["rlpd", "wsrl"] = "rlpd"
    """online phase after pretraining: 'rlpd' (the same networks, CQL off, batches drawn --demo-fraction from the demos: RoboFuME's recipe) or 'wsrl' (WSRL: a warm-up rollout of the pretrained policy, then updates on online data only)."""
    wsrl_warmup_steps: int = 500
    """WSRL: env steps collected with the pretrained policy and no updates before fine-tuning starts. WSRL uses 5,000 on its benchmarks (five of their 1,000-step locomotion or AntMaze episodes); 500 is 10 of the sims' 50-step episodes (more when the pretrained policy succeeds early), 10 % of the default 5,000-step budget: several whole episodes, so the first online batches are not one or two trajectories, and 5x the ~100 transitions of 10 scripted pick-and-lift demos."""


def cql_regularizer(q_data: torch.Tensor, q_rand: torch.Tensor, q_pi: torch.Tensor, log_pi: torch.Tensor,
                    q_next_pi: torch.Tensor, log_next_pi: torch.Tensor, mc_return: torch.Tensor | None,
                    action_dim: int, temperature: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CQL(H) regulariser with Cal-QL's calibration, per critic member and state.

    For each member e and state s_b with N sampled actions of each kind::

        q_pi'      = max(q_pi,      G(s_b))      (Cal-QL; plain CQL: q_pi' = q_pi)
        q_next_pi' = max(q_next_pi, G(s_b))
        x          = concat_N[q_rand + A log 2,  q_next_pi' - log pi(a'|s'),  q_pi' - log pi(a|s)]   (3N values)
        reg[e, b]  = T * logsumexp(x / T) - q_data[e, b]

    where ``-A log 2`` is the log-density of the uniform actions in [-1, 1]^A (subtracted, as the
    importance weight 1/density), G is the Monte-Carlo return-to-go of s_b and T the temperature.
    The critic loss is then ``TD loss + cql_alpha * reg.mean()`` (mean over members and batch).

    Args:
        q_data: (E, B) Q(s, a_data) of the dataset actions, with grad.
        q_rand: (E, B, N) Q(s, a) of uniform actions a ~ U[-1, 1]^A.
        q_pi: (E, B, N) Q(s, a) of policy actions a ~ pi(.|s).
        log_pi: (B, N) log pi(a|s) of those actions, nats (no grad).
        q_next_pi: (E, B, N) Q(s, a') of policy actions at the next state, a' ~ pi(.|s').
        log_next_pi: (B, N) log pi(a'|s'), nats (no grad).
        mc_return: (B,) Monte-Carlo return-to-go of s (see
            :meth:`robot_rl.replay.ReplayBuffer.return_to_go`), or None for plain CQL.
        action_dim: A (the uniform actions' density is 2^-A).
        temperature: T > 0.

    Returns:
        ``(reg, logs)``: reg (E, B) float32; logs of detached scalars: ``cql_q_rand``,
        ``cql_q_pi``, ``cql_q_next_pi`` (means before calibration), ``cql_bound_rate`` (fraction
        of policy-action values raised to the bound; 0 for plain CQL), ``cql_ood`` (mean
        logsumexp term).

    Sources:
        Kumar et al. 2020 (CQL), arXiv:2006.04779, appendix F; Nakamoto et al. 2023 (Cal-QL),
        arXiv:2303.05479, eq. 5.1 and ``JaxCQL/conservative_sac.py`` of github.com/nakamotoo/Cal-QL.
    """
    logs = {"cql_q_rand": q_rand.detach().mean(), "cql_q_pi": q_pi.detach().mean(),
            "cql_q_next_pi": q_next_pi.detach().mean()}
    if mc_return is not None:
        bound = mc_return[None, :, None]  # (1, B, 1), broadcast over members and samples
        raised = torch.cat([q_pi.detach() < bound, q_next_pi.detach() < bound], -1)
        q_pi, q_next_pi = torch.maximum(q_pi, bound), torch.maximum(q_next_pi, bound)
        logs["cql_bound_rate"] = raised.float().mean()
    else:
        logs["cql_bound_rate"] = torch.zeros((), device=q_data.device)
    x = torch.cat([q_rand + action_dim * math.log(2.0), q_next_pi - log_next_pi[None], q_pi - log_pi[None]],
                  dim=-1)  # (E, B, 3N)
    ood = temperature * torch.logsumexp(x / temperature, dim=-1)  # (E, B)
    logs["cql_ood"] = ood.detach().mean()
    return ood - q_data, logs


def cql_action_values(critic: nn.Module, actor: nn.Module, feats: torch.Tensor, next_feats: torch.Tensor,
                      num_actions: int) -> tuple[torch.Tensor, ...]:
    """Sample the regulariser's actions and evaluate them all by Q(s, .) in one critic call.

    Uniform actions come from ``torch.rand`` and policy actions from ``actor.sample`` (both the
    torch RNG). Policy actions and log-probs carry no gradient (as in the reference: the
    regulariser trains the critic only); the Q values carry the critic's (and ``feats``') gradient.

    Args:
        critic: :class:`~robot_rl.policies.networks.CriticEnsemble`, (M, F + A) -> (E, M).
        actor: the policy network, ``sample(features (M, F)) -> (action (M, A), log_prob (M,))``.
        feats: (B, F) features of s (with grad). next_feats: (B, F) features of s' (no grad needed).
        num_actions: N per state and kind.

    Returns:
        ``(q_rand, q_pi, log_pi, q_next_pi, log_next_pi)`` as :func:`cql_regularizer` takes them:
        Q values (E, B, N), log-probs (B, N).
    """
    b, n = feats.shape[0], num_actions
    with torch.no_grad():
        a_pi, log_pi = actor.sample(feats.detach().repeat_interleave(n, 0))  # (B N, A), (B N,)
        a_next, log_next = actor.sample(next_feats.repeat_interleave(n, 0))
    a_rand = torch.rand_like(a_pi) * 2.0 - 1.0  # U[-1, 1]^A, log density -A log 2
    rep = feats.repeat_interleave(n, 0)
    q = critic(torch.cat([torch.cat([rep, a], 1) for a in (a_rand, a_pi, a_next)], 0))  # (E, 3 B N)
    q_rand, q_pi, q_next = q.view(q.shape[0], 3, b, n).unbind(1)
    return (q_rand, q_pi, log_pi.view(b, n), q_next, log_next.view(b, n))
