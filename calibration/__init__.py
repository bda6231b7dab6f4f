"""Camera intrinsics, hand-eye calibration and workspace limits.

ChArUco detection (`charuco`), intrinsics (`intrinsics`), hand-eye (`hand_eye`), a sim board scene for validation (`sim_board`).
"""
