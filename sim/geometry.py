"""What both simulation backends' Panda table scenes share: geometry, cameras, time step.

Each backend's ``SceneConfig`` extends :class:`TableSceneConfig` with its engine's contact
settings, so the cube, target and cameras are defined once and cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TableSceneConfig:
    """Geometry, cameras and time step of the Panda table scene (base frame, metres)."""

    sim_dt_s: float = 0.002
    """physics time step in seconds."""
    cube_half_size_m: float = 0.02
    """half the cube's edge length (a 4 cm cube fits the 8 cm Panda gripper with margin)."""
    cube_mass_kg: float = 0.05
    """cube mass."""
    with_target: bool = False
    """add the flat, non-colliding target marker (push task)."""
    target_radius_m: float = 0.03
    """radius of the drawn target disc."""
    front_camera_position_m: tuple[float, float, float] = (1.2, 0.0, 0.6)
    """front camera position, base frame."""
    front_camera_lookat_m: tuple[float, float, float] = (0.45, 0.0, 0.1)
    """point the front camera looks at, base frame."""
    front_camera_fovy_deg: float = 45.0
    """vertical field of view of the front camera."""
    wrist_camera_fovy_deg: float = 70.0
    """vertical field of view of the wrist camera."""
    shadows: bool = False
    """render shadows (about 5x slower on CPU renderers); off by default."""
