"""Learning-side policies: networks (encoders, actor, critic ensemble) and their checkpoints."""
