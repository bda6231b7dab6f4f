"""Success check by a generative VLM behind an OpenAI-compatible chat completions API.

Sends each step's camera frame(s) (PNG data URLs) and a yes/no question about the task to
``POST <base_url>/chat/completions`` — the API vLLM (``vllm serve Qwen/Qwen2.5-VL-7B-Instruct``)
and Ollama (``ollama serve``, base URL ``http://localhost:11434/v1``) expose — and turns the
answer into ``P(yes)``:

* when the server returns ``logprobs`` of the first answer token (``logprobs=true``,
  ``top_logprobs=k``): ``P(yes) = p_yes / (p_yes + p_no)`` summed over the top-k tokens that are
  "yes"/"no" up to case and whitespace (the answer distribution restricted to the two answers);
* otherwise 1.0 if the answer text starts with "yes", else 0.0.

Answers are cached by a hash of the frames and the question (a static scene is asked once),
requests are rate limited, and every request has a timeout. Only the standard library is used.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError, DeviceUnavailableError, TransportError
from robot_rl.rewards.base import RewardModel, register_reward_model

_YES, _NO = "yes", "no"


def png_data_url(frame: np.ndarray) -> str:
    """``data:image/png;base64,...`` of an ``(H, W, 3) uint8`` RGB frame."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(frame[:, :, ::-1]))
    if not ok:
        raise ConfigError(f"could not PNG-encode a frame of shape {frame.shape} {frame.dtype}.")
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def yes_probability(response: dict[str, Any]) -> float:
    """``P(yes)`` from a chat completions response (see the module docstring).

    Raises:
        TransportError: the response has no ``choices[0].message``.
    """
    try:
        choice = response["choices"][0]
        text = (choice["message"].get("content") or "").strip().lower()
    except (KeyError, IndexError, TypeError, AttributeError):
        raise TransportError(f"the chat server's answer is not a chat completion: {json.dumps(response)[:300]}") from None
    content = ((choice.get("logprobs") or {}).get("content")) or []
    if content:
        first = content[0]
        tops = first.get("top_logprobs") or [{"token": first.get("token", ""), "logprob": first.get("logprob", -math.inf)}]
        p = {_YES: 0.0, _NO: 0.0}
        for t in tops:
            word = str(t.get("token", "")).strip().lower()
            if word in p:
                p[word] += math.exp(float(t.get("logprob", -math.inf)))
        if p[_YES] + p[_NO] > 0:
            return p[_YES] / (p[_YES] + p[_NO])
    return 1.0 if text.startswith(_YES) else 0.0


class ChatVLMSuccess(RewardModel):
    """Reward = ``P(yes)`` that the task is done, asked of a VLM over an OpenAI-compatible API.

    Args:
        question: the yes/no question ("Is the red cube lifted above the table?"); the prompt
            adds "Answer yes or no.".
        base_url: API root, e.g. ``http://localhost:8000/v1`` (vLLM), ``http://localhost:11434/v1`` (Ollama).
        model: model name the server knows (``Qwen/Qwen2.5-VL-7B-Instruct``, ``llava``).
        cameras: cameras whose frames go into one request per step (in this order).
        threshold: a step is a success when ``P(yes) >= threshold``.
        timeout_s: per-request timeout (connect and read), seconds.
        max_requests_per_s: request rate limit (cache hits are free); 0 disables it.
        top_logprobs: how many first-token alternatives to ask for (0: do not ask for logprobs).
        max_tokens: answer length limit, tokens.
        api_key_env: environment variable holding a bearer token, if the server wants one (the
            key itself is never stored in :meth:`config`).
        cache_size: answers kept (least recently used dropped first).

    Raises:
        ConfigError: bad settings.
        DeviceUnavailableError: (from :meth:`rewards`) the server cannot be reached or timed out.
        TransportError: (from :meth:`rewards`) the server answered with an HTTP error or not a chat completion.
    """

    kind = "chat_vlm"

    def __init__(self, question: str, base_url: str = "http://localhost:8000/v1", model: str = "",
                 cameras: str | Sequence[str] = ("front",), threshold: float = 0.5, timeout_s: float = 30.0,
                 max_requests_per_s: float = 2.0, top_logprobs: int = 5, max_tokens: int = 1,
                 api_key_env: str = "OPENAI_API_KEY", cache_size: int = 4096) -> None:
        if not question.strip():
            raise ConfigError("ChatVLMSuccess needs a yes/no question about the task ('Is the red cube lifted?').")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must be an http(s) URL such as http://localhost:8000/v1, got {base_url!r}.")
        if timeout_s <= 0 or max_requests_per_s < 0 or cache_size < 0 or not 0 <= top_logprobs <= 20:
            raise ConfigError("timeout_s must be > 0 s, max_requests_per_s >= 0, cache_size >= 0, top_logprobs in 0..20.")
        self.question, self.base_url, self.model_name = question, base_url.rstrip("/"), model
        self.cameras = (cameras,) if isinstance(cameras, str) else tuple(cameras)
        self.threshold, self.timeout_s, self.max_requests_per_s = float(threshold), float(timeout_s), float(max_requests_per_s)
        self.top_logprobs, self.max_tokens, self.api_key_env, self.cache_size = int(top_logprobs), int(max_tokens), api_key_env, int(cache_size)
        self._cache: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._next_request = 0.0
        self.requests_sent = 0

    def _key(self, frames: Sequence[np.ndarray]) -> str:
        h = hashlib.sha256(f"{self.model_name}\0{self.question}".encode())
        for f in frames:
            h.update(str(f.shape).encode())
            h.update(np.ascontiguousarray(f).tobytes())
        return h.hexdigest()

    def _throttle(self) -> None:
        if self.max_requests_per_s <= 0:
            return
        with self._lock:
            now = time.monotonic()
            wait = self._next_request - now
            self._next_request = max(now, self._next_request) + 1.0 / self.max_requests_per_s
        if wait > 0:
            time.sleep(wait)

    def ask(self, frames: Sequence[np.ndarray]) -> float:
        """``P(yes)`` for one step's frames (one ``(H, W, 3) uint8`` per camera), from the cache or the server."""
        key = self._key(frames)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        content = [{"type": "image_url", "image_url": {"url": png_data_url(f)}} for f in frames]
        content.append({"type": "text", "text": f"{self.question.strip()} Answer yes or no."})
        body: dict[str, Any] = {"model": self.model_name, "messages": [{"role": "user", "content": content}],
                                "max_tokens": self.max_tokens, "temperature": 0.0}
        if self.top_logprobs:
            body.update(logprobs=True, top_logprobs=self.top_logprobs)
        self._throttle()
        p = yes_probability(self._post("/chat/completions", body))
        with self._lock:
            self._cache[key] = p
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return p

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        url = self.base_url + path
        headers = {"Content-Type": "application/json"}
        if os.environ.get(self.api_key_env):
            headers["Authorization"] = f"Bearer {os.environ[self.api_key_env]}"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        self.requests_sent += 1
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode(errors="replace")
            raise TransportError(f"the chat server at {url} answered HTTP {e.code}: {detail} "
                                 f"(is model {self.model_name!r} served there, and does it accept images?)") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise DeviceUnavailableError(
                f"cannot reach the chat VLM server at {url} ({reason}; timeout {self.timeout_s} s). Start one, e.g. "
                "'vllm serve Qwen/Qwen2.5-VL-7B-Instruct' (base_url http://HOST:8000/v1) or 'ollama serve' "
                "(base_url http://HOST:11434/v1), and check base_url.") from None
        try:
            return json.loads(payload)
        except json.JSONDecodeError:
            raise TransportError(f"the chat server at {url} did not answer JSON: {payload[:200]!r}") from None

    def rewards(self, images: dict[str, np.ndarray]) -> np.ndarray:
        """``(B,) float32`` ``P(yes)`` per step, one request per uncached step.

        Args:
            images: camera name -> ``(B, H, W, 3) uint8`` RGB frames for every name in :attr:`cameras`.
        """
        missing = [c for c in self.cameras if c not in images]
        if missing:
            raise ConfigError(f"ChatVLMSuccess reads cameras {list(self.cameras)} but got no frames for {missing}.")
        batch = len(images[self.cameras[0]])
        return np.array([self.ask([np.asarray(images[c][i]) for c in self.cameras]) for i in range(batch)], np.float32)

    def is_success(self, rewards: np.ndarray) -> np.ndarray:
        """``(B,) bool``: ``P(yes) >= threshold``."""
        return np.asarray(rewards, np.float32) >= self.threshold

    def config(self) -> dict[str, Any]:
        """Settings that rebuild this model (no API key: only the name of its environment variable)."""
        return {"kind": self.kind, "question": self.question, "base_url": self.base_url, "model": self.model_name,
                "cameras": list(self.cameras), "threshold": self.threshold, "timeout_s": self.timeout_s,
                "max_requests_per_s": self.max_requests_per_s, "top_logprobs": self.top_logprobs,
                "max_tokens": self.max_tokens, "api_key_env": self.api_key_env, "cache_size": self.cache_size}


register_reward_model(ChatVLMSuccess.kind, ChatVLMSuccess)
