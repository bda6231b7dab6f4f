"""Peg-and-hole geometry shared by the MuJoCo and PyBullet insertion scenes (one home for the sizes).

Frames (all metres, right-handed):

* **peg frame**: origin at the centre of the peg's tip face (its lower end while held tool-down),
  z along the peg's axis pointing away from the tip (towards the gripper); the peg is a square
  box of side ``2 * peg_half_width_m`` and length ``peg_length_m``, so its centre is at
  ``(0, 0, peg_length_m / 2)``.
* **hole frame** (the fixture's frame): origin at the centre of the hole's entry (the fixture's
  top face), z pointing out of the hole (up for an untilted fixture); the hole is a square
  opening of side ``2 * hole_half_width_m`` and depth ``hole_depth_m`` (it is open at the bottom
  and ends on the table, whose top is the hole's floor). Above the entry, a lip of 45 degree
  ramps ``chamfer_m`` wide leads into the opening (the lead-in of a real connector or bore).
* **tool frame**: the arm's tool-centre-point frame (``panda_grasptarget``); tool-down means its
  z axis points down. A peg held straight sits with its frame at ``(0, 0, tip_below_tcp_m)`` in
  the tool frame, rotated by a half turn about the tool x axis (peg z = -tool z).

A peg is inserted when its tip is inside the hole (``|x|, |y| <= hole_half_width_m`` in the hole
frame) and below the entry (hole-frame z < 0); the depth is ``-z``.

The fixture is four wall boxes around the opening plus four lead-in boxes, each turned 45 degrees
about its long axis and centred so that one edge runs along the opening's rim (a box hole works in
both engines' box-box colliders, which are the most robust ones they have).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass
class PegHoleGeometry:
    """Sizes of the peg and of the fixture with the square hole (metres, kilograms)."""

    peg_half_width_m: float = 0.008
    """half the side of the square peg (a 16 mm peg fits between the Panda's 17 mm wide pads)."""
    peg_length_m: float = 0.06
    """peg length, tip to top."""
    peg_mass_kg: float = 0.05
    """peg mass (gravity-compensated in MuJoCo, like the arm's links; PyBullet's arm carries it)."""
    tip_below_tcp_m: float = 0.045
    """distance from the TCP to the peg tip along the tool z axis for a centred grasp (15 mm of the
    peg between the finger pads)."""
    clearance_m: float = 0.001
    """hole side minus peg side: 0.5 mm of play on each side (issue 14 asks for about 1 mm or less)."""
    hole_depth_m: float = 0.03
    """depth of the hole (height of the fixture's walls)."""
    wall_thickness_m: float = 0.025
    """thickness of each of the fixture's four walls."""
    chamfer_m: float = 0.003
    """horizontal (and vertical) size of the 45 degree lead-in ramps on the rim; 0: a sharp rim. A
    tip within ``clearance_m / 2 + chamfer_m`` of the axis lands on a ramp that slides a compliant
    arm into the bore (3 mm: the width of a SAC policy's exploration noise at 0.1 of a 3 cm step)."""
    friction: float = 0.3
    """sliding friction coefficient between peg and fixture (MuJoCo: of each geom, the larger is
    used; PyBullet: of each body, their product is used, so each gets its square root)."""

    @property
    def hole_half_width_m(self) -> float:
        """Half the side of the square opening, metres."""
        return self.peg_half_width_m + self.clearance_m / 2

    @property
    def fixture_half_width_m(self) -> float:
        """Half the side of the fixture's square outline, metres."""
        return self.hole_half_width_m + self.wall_thickness_m

    def fixture_boxes(self) -> list[tuple[np.ndarray, np.ndarray, Rotation]]:
        """The fixture's boxes as ``(half_extents (3,), centre (3,), rotation)``, hole frame, metres.

        Two long walls at +-y span the whole outline; two short ones at +-x close the gaps. With a
        chamfer, each rim carries a box of square section turned 45 degrees about the rim and centred
        ``chamfer_m`` outside it at the entry's height: its inner edge lies on the rim, its upper
        inner face is the ramp, the rest sits on (and in) the wall.
        """
        h, t, d, c = self.hole_half_width_m, self.wall_thickness_m, self.hole_depth_m, self.chamfer_m
        upright = Rotation.identity()
        long_half, short_half, off = np.array([h + t, t / 2, d / 2]), np.array([t / 2, h, d / 2]), h + t / 2
        boxes = [(long_half, np.array([0.0, off, -d / 2]), upright), (long_half, np.array([0.0, -off, -d / 2]), upright),
                 (short_half, np.array([off, 0.0, -d / 2]), upright), (short_half, np.array([-off, 0.0, -d / 2]), upright)]
        if c > 0.0:
            side = c / np.sqrt(2.0)  # half side of the square section whose half diagonal is c
            along_x, along_y = Rotation.from_rotvec([np.pi / 4, 0.0, 0.0]), Rotation.from_rotvec([0.0, np.pi / 4, 0.0])
            rim = h + 2 * c  # half length: the rim and the corners where two ramps meet
            boxes += [(np.array([rim, side, side]), np.array([0.0, s * (h + c), 0.0]), along_x) for s in (1.0, -1.0)]
            boxes += [(np.array([side, rim, side]), np.array([s * (h + c), 0.0, 0.0]), along_y) for s in (1.0, -1.0)]
        return boxes

    def peg_half_extents(self) -> np.ndarray:
        """(3,) half extents of the peg box, peg frame, metres."""
        return np.array([self.peg_half_width_m, self.peg_half_width_m, self.peg_length_m / 2])

    def peg_centre_in_peg_frame(self) -> np.ndarray:
        """(3,) centre of the peg box in the peg frame (the tip is the origin), metres."""
        return np.array([0.0, 0.0, self.peg_length_m / 2])


def peg_in_tool(geometry: PegHoleGeometry, offset_x_m: float, offset_z_m: float,
                tilt_rad: float) -> tuple[np.ndarray, Rotation]:
    """Pose of the peg frame in the tool frame for a grasp offset from the centred grasp.

    Args:
        geometry: peg sizes (``tip_below_tcp_m``).
        offset_x_m: shift along the tool x axis (along the pads: the direction the fingers do
            not constrain), metres.
        offset_z_m: shift along the tool z axis (deeper, +, or shallower, -, in the grip), metres.
        tilt_rad: rotation of the peg about the tool y axis through the TCP (the pads' normal,
            the one rotation flat pads leave free), radians.

    Returns:
        ``(position (3,) metres, rotation)``: the peg frame in the tool frame.
    """
    tilt = Rotation.from_rotvec([0.0, tilt_rad, 0.0])  # about the grip point (the TCP)
    position = tilt.apply([offset_x_m, 0.0, geometry.tip_below_tcp_m + offset_z_m])
    return position, tilt * Rotation.from_rotvec([np.pi, 0.0, 0.0])
