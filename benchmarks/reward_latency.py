"""Reward latency per frame of the camera reward models (VLM-RM, success classifier) at batch 1 and 32.

Usage:
    python benchmarks/reward_latency.py [--image-size 128] [--repeats 5] [--device cpu] [--threads 1] [--skip-vit-b32]

Models (random weights, built here: nothing is downloaded, and latency does not depend on the
weights' values):
    * tiny open_clip ViT (2 layers, width 64, 32 px input; the test suite's model);
    * tiny transformers CLIP (2 layers, width 32, 32 px input);
    * open_clip ViT-B-32 (the architecture of the usual VLM-RM CLIP, 224 px input, 88 M parameters);
    * success classifier, CNN from scratch, front + wrist cameras (the default of
      ``robot-rl train-reward-classifier``: crops resized to 64x64);
    * success classifier, frozen ResNet-18 backbone, front + wrist cameras resized to 128x128.

Each row times ``rewards(frames)`` end to end (uint8 frames -> per-model preprocessing -> image
tower -> reward: goal-baseline similarity, or thresholded success probability) after one warm-up
call, and prints milliseconds per step (all cameras of a step; fastest of the repeats) and the
batch-32 speed-up over batch 1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from robot_rl.rewards.base import RewardModel
from robot_rl.rewards.classifier import ClassifierConfig, SuccessClassifier
from robot_rl.rewards.vlm import VLMReward

GOAL, BASELINE = "a robot gripper holding a red cube above the table", "a robot arm and a red cube on a table"
TINY_OPEN_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
                  "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


def tiny_open_clip(folder: Path) -> dict:
    """A tiny open_clip model saved for the ``local-dir:`` schema; VLMReward kwargs that load it."""
    import open_clip
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_OPEN_CLIP}))
    model = open_clip.create_model(f"local-dir:{folder}")
    save_file(model.state_dict(), str(folder / "open_clip_model.safetensors"))
    return {"backend": "open_clip", "model_path": str(folder)}


def tiny_transformers_clip(folder: Path) -> dict:
    """A tiny transformers CLIP with a word-level tokenizer, saved with save_pretrained."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    words = sorted(set((GOAL + " " + BASELINE).split()))
    vocab = {"<pad>": 0, "<unk>": 1, "<bos>": 2, "<eos>": 3, **{w: i + 4 for i, w in enumerate(words)}}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A <eos>", special_tokens=[("<bos>", 2), ("<eos>", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>",
                            eos_token="<eos>", model_max_length=16).save_pretrained(folder)
    text = dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=16, pad_token_id=0, bos_token_id=2, eos_token_id=3)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=24)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return {"backend": "transformers", "model_path": str(folder)}


def ms_per_step(reward: RewardModel, batch: int, image_size: int, repeats: int,
                 cameras: tuple[str, ...] = ("front",)) -> float:
    """Fastest wall time of ``repeats`` ``rewards`` calls on ``batch`` random steps (one frame per
    camera each), divided by ``batch``, in ms.

    The minimum, not the median: on a shared machine it is the run least disturbed by other processes.
    """
    rng = np.random.default_rng(0)
    frames = {c: rng.integers(0, 256, (batch, image_size, image_size, 3), dtype=np.uint8) for c in cameras}
    reward.rewards(frames)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        reward.rewards(frames)
        if reward.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times) / batch * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image-size", type=int, default=128, help="camera frame size in pixels (square), before preprocessing")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per row")
    parser.add_argument("--device", default="cpu", help="'cpu', 'cuda' or 'auto' (fp16 on CUDA)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default). On a loaded "
                        "machine 1 thread can be several times faster at batch 1 than oversubscribed OpenMP threads")
    parser.add_argument("--skip-vit-b32", action="store_true", help="only the tiny models")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="reward_latency_"))
    models = {"tiny open_clip ViT": tiny_open_clip(tmp / "oc"), "tiny transformers CLIP": tiny_transformers_clip(tmp / "hf")}
    if not args.skip_vit_b32:
        models["open_clip ViT-B-32 (random)"] = {"backend": "open_clip", "model": "ViT-B-32", "pretrained": "random"}
    two = ("front", "wrist")
    rows: dict[str, tuple[RewardModel, tuple[str, ...]]] = {
        name: (VLMReward(GOAL, BASELINE, alpha=0.5, device=args.device, **kwargs), ("front",))
        for name, kwargs in models.items()}
    rows["success classifier, CNN, front + wrist"] = (
        SuccessClassifier(ClassifierConfig(cameras=two, image_size=64), device=args.device), two)
    rows["success classifier, frozen ResNet-18, front + wrist"] = (
        SuccessClassifier(ClassifierConfig(cameras=two, image_size=128, encoder="resnet18"), device=args.device), two)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, frames {args.image_size}x{args.image_size}, "
          "VLM alpha 0.5")
    width = max(len(n) for n in rows)
    print(f"{'model':<{width}}  {'batch 1 ms/step':>15}  {'batch 32 ms/step':>16}  {'batch 32 speed-up':>17}")
    for name, (reward, cameras) in rows.items():
        one = ms_per_step(reward, 1, args.image_size, args.repeats, cameras)
        many = ms_per_step(reward, 32, args.image_size, max(1, args.repeats // 2), cameras)
        print(f"{name:<{width}}  {one:15.2f}  {many:16.2f}  {one / many:16.1f}x")


if __name__ == "__main__":
    main()
