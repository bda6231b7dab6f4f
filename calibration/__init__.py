"""Camera intrinsics, hand-eye calibration and workspace limits.

Empty until the calibration issue lands.
"""
