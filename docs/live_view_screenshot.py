"""Take docs/live_view.png: the Rerun live view of a short `robot-rl train` run, in Rerun's web
viewer, shot by a real headless Chromium through the DevTools protocol.

What it does:

1. starts ``rerun --serve-web --bind 127.0.0.1`` (gRPC proxy + web viewer, both on loopback; the
   proxy buffers what is logged, so a browser that connects later sees the whole run);
2. runs ``robot-rl train`` on the 64x64 pixel pick-and-lift env, the scripted corrector taking
   over now and then (``--teleop scripted``: orange points), with ``--view --view-target
   rerun+http://127.0.0.1:<grpc port>/proxy`` (the default blueprint: cameras, the 3-D EE
   trajectory, the time series);
3. opens the web viewer in ``chromium --headless=new`` (WebGL through SwiftShader), waits
   ``--wait-s`` seconds of wall time for the viewer to load and draw, and saves a screenshot
   (``Page.captureScreenshot`` over the DevTools websocket), downscaled with PIL to stay small.

Run it again from the repository root (needs chromium: ``apt-get install -y chromium``; the
``websockets`` package of the venv)::

    source .venv/bin/activate
    MUJOCO_GL=egl python docs/live_view_screenshot.py --out docs/live_view.png

About 4 minutes on 2 CPU cores (training ~2 min, then the viewer gets ``--wait-s`` 90 s: under
SwiftShader it takes that long to load and draw a 400-step run).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


def screenshot(url: str, wait_s: float, width: int, height: int) -> bytes:
    """PNG bytes of ``url`` in headless Chromium after ``wait_s`` seconds of wall time."""
    from websockets.sync.client import connect

    chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chrome is None:
        raise SystemExit("chromium not found (apt-get install -y chromium)")
    port = free_port()
    profile = tempfile.mkdtemp(prefix="shot_chrome_")
    cmd = [chrome, "--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           f"--window-size={width},{height}", f"--remote-debugging-port={port}", "--remote-allow-origins=*",
           f"--user-data-dir={profile}", "--hide-scrollbars", "--no-first-run", "about:blank"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        tabs = None
        for _ in range(200):
            try:
                tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
                break
            except OSError:
                time.sleep(0.1)
        if tabs is None:
            raise TimeoutError("chromium's DevTools endpoint did not come up")
        ws_url = next(t for t in tabs if t["type"] == "page")["webSocketDebuggerUrl"]
        with connect(ws_url, max_size=None, open_timeout=30) as ws:
            ids = iter(range(1, 1 << 30))

            def call(method: str, **params):
                i = next(ids)
                ws.send(json.dumps({"id": i, "method": method, "params": params}))
                while True:
                    m = json.loads(ws.recv(timeout=120))
                    if m.get("id") == i:
                        if "error" in m:
                            raise RuntimeError(f"{method}: {m['error']}")
                        return m["result"]

            call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
            call("Page.navigate", url=url)
            time.sleep(wait_s)
            return base64.b64decode(call("Page.captureScreenshot", format="png")["data"])
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("docs/live_view.png"))
    ap.add_argument("--steps", type=int, default=400, help="env steps of the training run")
    ap.add_argument("--wait-s", type=float, default=90.0, help="wall seconds the viewer gets to load and draw")
    ap.add_argument("--width", type=int, default=1600)
    ap.add_argument("--height", type=int, default=900)
    ap.add_argument("--max-width", type=int, default=1280, help="downscale the PNG to this width")
    args = ap.parse_args()

    bin_dir = Path(sys.executable).parent
    rerun = str(bin_dir / "rerun") if (bin_dir / "rerun").exists() else "rerun"
    robot_rl = str(bin_dir / "robot-rl") if (bin_dir / "robot-rl").exists() else "robot-rl"
    grpc_port, web_port = free_port(), free_port()
    grpc_url = f"rerun+http://127.0.0.1:{grpc_port}/proxy"
    work = Path(tempfile.mkdtemp(prefix="live_view_shot_"))
    viewer = subprocess.Popen([rerun, "--serve-web", "--bind", "127.0.0.1", "--port", str(grpc_port),
                               "--web-viewer-port", str(web_port), "--server-memory-limit", "1GiB"],
                              stdout=open(work / "rerun.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_port(grpc_port, 60)
        wait_port(web_port, 60)
        env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
        train = [robot_rl, "train", "--env", "robot_rl/PandaPickLiftPixels-v0", "--env-kwargs", "image_size", "64",
                 "--total-env-steps", str(args.steps), "--num-demos", "2", "--eval-every-steps", "0",
                 "--checkpoint-every-steps", "0", "--teleop", "scripted", "--no-progress", "--no-final-video", "--torch-threads", "1",
                 "--run-dir", str(work / "run"), "--view", "--view-target", grpc_url]
        print("$", " ".join(train), flush=True)
        t0 = time.time()
        subprocess.run(train, check=True, env=env)
        print(f"training done in {time.time() - t0:.0f} s", flush=True)
        page = f"http://127.0.0.1:{web_port}/?url={urllib.parse.quote(grpc_url, safe='')}"
        print("shooting", page, flush=True)
        png = screenshot(page, args.wait_s, args.width, args.height)
    finally:
        # the venv's `rerun` is a Python wrapper around the rerun binary: stop its whole process group
        os.killpg(viewer.pid, signal.SIGTERM)
        try:
            viewer.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(viewer.pid, signal.SIGKILL)
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    if img.width > args.max_width:
        img = img.resize((args.max_width, round(img.height * args.max_width / img.width)), Image.LANCZOS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    img.save(args.out, optimize=True)
    print(f"wrote {args.out} ({img.width}x{img.height}, {args.out.stat().st_size // 1024} KB); work dir {work}")


if __name__ == "__main__":
    main()
