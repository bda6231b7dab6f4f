"""ChatVLMSuccess against a real HTTP server on 127.0.0.1 that answers like vLLM's chat completions API."""

from __future__ import annotations

import base64
import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from robot_rl.errors import DeviceUnavailableError, TransportError
from robot_rl.rewards.base import make_reward_model
from robot_rl.rewards.chat_vlm import ChatVLMSuccess


class FakeVLMServer:
    """Decodes the PNG it gets and answers "yes" for bright frames (mean > 127), like a VLM would
    for "is the light on?". ``mode``: ``logprobs`` (first-token top_logprobs), ``text`` (no
    logprobs), ``slow`` (sleeps ``delay_s``), ``error`` (HTTP 500)."""

    def __init__(self) -> None:
        self.mode, self.delay_s, self.requests = "logprobs", 0.0, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, dict(self.headers), body, time.monotonic()))
                mode = outer.mode
                if mode == "slow":
                    time.sleep(outer.delay_s)
                    return  # the client gave up long ago
                if mode == "error":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b'{"error": "model not loaded"}')
                    return
                content = body["messages"][0]["content"]
                url = next(c["image_url"]["url"] for c in content if c["type"] == "image_url")
                png = base64.b64decode(url.split(",", 1)[1])
                image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
                bright = float(image.mean()) > 127
                answer = "Yes" if bright else "No"
                choice = {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "length"}
                if mode == "logprobs" and body.get("logprobs"):
                    p_yes = 0.8 if bright else 0.3
                    tops = [{"token": "Yes", "logprob": math.log(p_yes)}, {"token": " no", "logprob": math.log(0.15)},
                            {"token": "No", "logprob": math.log(0.9 - p_yes)}, {"token": "Maybe", "logprob": math.log(0.05)}]
                    choice["logprobs"] = {"content": [{"token": answer, "logprob": math.log(max(p_yes, 0.9 - p_yes)), "top_logprobs": tops}]}
                data = json.dumps({"id": "x", "object": "chat.completion", "model": body["model"], "choices": [choice]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    s = FakeVLMServer()
    yield s
    s.close()


def _frame(value: int, size: int = 24) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def test_yes_probability_from_first_token_logprobs(server, monkeypatch) -> None:
    monkeypatch.setenv("TEST_VLM_KEY", "secret")
    model = ChatVLMSuccess("Is the light on?", base_url=server.url, model="qwen-vl", max_requests_per_s=0,
                           api_key_env="TEST_VLM_KEY", threshold=0.6)
    r = model.rewards({"front": np.stack([_frame(250), _frame(10)])})
    # p_yes / (p_yes + p_no), "no" summed over " no" and "No".
    np.testing.assert_allclose(r, [0.8 / (0.8 + 0.15 + 0.1), 0.3 / (0.3 + 0.15 + 0.6)], rtol=1e-5)
    assert r.dtype == np.float32 and model.is_success(r).tolist() == [True, False]
    path, headers, body, _ = server.requests[0]
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer secret"
    assert body["model"] == "qwen-vl" and body["logprobs"] is True and body["top_logprobs"] == 5
    assert "secret" not in json.dumps(model.config())


def test_text_answer_without_logprobs(server) -> None:
    server.mode = "text"
    model = make_reward_model(ChatVLMSuccess("Is the light on?", base_url=server.url, max_requests_per_s=0).config())
    assert model.rewards({"front": np.stack([_frame(200), _frame(20)])}).tolist() == [1.0, 0.0]


def test_answers_are_cached_and_requests_rate_limited(server) -> None:
    model = ChatVLMSuccess("Is the light on?", base_url=server.url, max_requests_per_s=10.0)
    frames = np.stack([_frame(200), _frame(200), _frame(20), _frame(201), _frame(200)])
    start = time.monotonic()
    first = model.rewards({"front": frames})
    assert len(server.requests) == 3  # three distinct frames
    stamps = [t for *_, t in server.requests]
    assert min(np.diff(stamps)) >= 0.09 and time.monotonic() - start >= 0.18
    again = model.rewards({"front": frames})
    assert len(server.requests) == 3 and np.array_equal(first, again)


def test_unreachable_slow_and_failing_servers_give_clear_errors(server) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    closed = ChatVLMSuccess("Is the light on?", base_url=f"http://127.0.0.1:{port}/v1", timeout_s=2.0)
    with pytest.raises(DeviceUnavailableError, match="vllm serve"):
        closed.rewards({"front": _frame(1)[None]})
    server.mode, server.delay_s = "slow", 2.0
    slow = ChatVLMSuccess("Is the light on?", base_url=server.url, timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(DeviceUnavailableError, match="timeout 0.3 s"):
        slow.rewards({"front": _frame(2)[None]})
    assert time.monotonic() - start < 1.5
    server.mode = "error"
    with pytest.raises(TransportError, match="HTTP 500"):
        ChatVLMSuccess("Is the light on?", base_url=server.url).rewards({"front": _frame(3)[None]})
