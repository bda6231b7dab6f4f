"""Real hardware backends (cameras, arms, teleop devices).

Empty until the hardware issues land: nothing here pretends to drive a device.
"""
