"""synmotion: teach a video diffusion model a new motion from a few clips.

This package is the command-line core. It must stay importable without torch: the model code lives in
backend plugins (entry point group ``synmotion.backends``) that import torch only when they run.
"""

__version__ = "0.1.0"
