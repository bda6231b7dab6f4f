"""Load torch's lazily imported native libraries before an environment opens an EGL context.

The first ``torch.optim.Adam`` imports ``torch._dynamo``, which imports ``triton``. Triton's
``libtriton.so`` carries its own statically linked LLVM; if Mesa's EGL (the software
``swrast``/llvmpipe driver, which loads the system ``libLLVM-*.so``) is already in the process,
the two LLVMs collide and loading ``libtriton.so`` segfaults (exit status 139). An env that
creates a ``mujoco.Renderer`` under ``MUJOCO_GL=egl`` in its constructor opens that context
before the learner builds its optimiser, so ``robot-rl train`` died in its first update.
Loading triton first, before any EGL context exists, avoids the collision (the reverse order
is safe). Same mechanism with another LLVM user: https://github.com/tensorflow/tensorflow/issues/124205
"""

from __future__ import annotations

import functools


@functools.cache
def preload_torch() -> None:
    """Import ``triton`` (the native library ``torch._dynamo`` loads lazily) if it is installed.

    Call before constructing any env that may create an OpenGL/EGL renderer;
    :func:`robot_rl.envs.make_env` does. Idempotent; costs about 0.1-0.2 s once per process
    (``torch._dynamo`` itself would cost about 1.5 s; the first ``Adam`` imports it anyway).
    Does not import torch. Without triton (CPU-only or macOS torch wheels) there is nothing to load.
    """
    try:
        import triton._C.libtriton  # noqa: F401 - the import is the point
    except ImportError:
        pass
