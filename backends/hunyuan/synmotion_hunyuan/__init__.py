"""SynMotion on HunyuanVideo (diffusers). Submodules import torch; this package does not."""
