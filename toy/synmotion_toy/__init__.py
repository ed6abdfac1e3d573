"""synmotion's toy world: a small procedurally rendered world of articulated characters in which a
video model can be trained on a CPU and motion learning can be judged. See docs/toy-world.md."""

__version__ = "0.1.0"
