"""Full-size HunyuanVideo with random weights: one SynMotion training step and one sampling step.

Builds the real architecture from its published config (no download), adds the motion LoRA and the
dual-embedding module exactly as `synmotion learn` does, and prints step time and peak GPU memory.
Needs a CUDA GPU with enough memory for the 12.8B transformer in bf16 (about 26 GB plus activations).

    python benchmarks/fullsize.py                       # 320x512x33, LoRA rank 32
    python benchmarks/fullsize.py --size 544x960 --frames 129 --rank 64 --no-checkpointing
"""

from __future__ import annotations

import argparse
import sys
import time

# The HunyuanVideo transformer config (hunyuanvideo-community/HunyuanVideo, transformer/config.json).
TRANSFORMER = dict(in_channels=16, out_channels=16, num_attention_heads=24, attention_head_dim=128, num_layers=20,
                   num_single_layers=40, num_refiner_layers=2, mlp_ratio=4.0, patch_size=2, patch_size_t=1,
                   qk_norm="rms_norm", guidance_embeds=True, text_embed_dim=4096, pooled_projection_dim=768,
                   rope_theta=256.0, rope_axes_dim=(16, 56, 56))
TEXT_TOKENS = 256


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="320x512")
    ap.add_argument("--frames", type=int, default=33)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--no-checkpointing", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("a CUDA GPU is needed for the full-size benchmark", file=sys.stderr)
        return 5
    from diffusers import HunyuanVideoTransformer3DModel

    from synmotion_hunyuan.adapters import AdapterConfig, add_motion_adapter
    from synmotion_hunyuan.embedding import DualEmbedding, EmbeddingConfig
    from synmotion_hunyuan.text_encoding import TokenSpans
    from synmotion_hunyuan.training import flow_matching_loss

    height, width = map(int, args.size.split("x"))
    dev = torch.device("cuda")
    t0 = time.perf_counter()
    with torch.device(dev):
        transformer = HunyuanVideoTransformer3DModel(**TRANSFORMER).to(torch.bfloat16)
    build_s = time.perf_counter() - t0
    lora = add_motion_adapter(transformer, AdapterConfig(rank=args.rank))
    for p in lora:
        p.data = p.data.float()
    if not args.no_checkpointing:
        transformer.enable_gradient_checkpointing()
    embedding = DualEmbedding(EmbeddingConfig(dim=4096, motion_tokens=2)).to(dev)
    params = lora + list(embedding.parameters())
    optimizer = torch.optim.AdamW(params, lr=2e-5)

    latent = (1, 16, (args.frames - 1) // 4 + 1, height // 8, width // 8)
    x0 = torch.randn(latent, device=dev)
    valid = 12
    embeds = torch.randn(1, TEXT_TOKENS, 4096, device=dev)
    mask = torch.zeros(1, TEXT_TOKENS, dtype=torch.long, device=dev)
    mask[:, :valid] = 1
    spans = TokenSpans(subject=(0, 3), motion=(3, 5), extensions=(5, 5))
    pooled = torch.randn(1, 768, device=dev)

    generator = torch.Generator().manual_seed(0)
    rows = []
    torch.cuda.reset_peak_memory_stats()
    for i in range(args.repeats + 1):
        torch.cuda.synchronize()
        t = time.perf_counter()
        e, m = embedding(embeds, mask, spans)
        loss = flow_matching_loss(transformer, x0, e, m, pooled, generator, shift=7.0, guidance=1.0, autocast=True)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i:  # the first step includes kernel selection and allocator warm-up
            rows.append(time.perf_counter() - t)
    train_peak = torch.cuda.max_memory_allocated() / 1024**3

    torch.cuda.reset_peak_memory_stats()
    transformer.eval()
    fwd = []
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for i in range(args.repeats + 1):
            torch.cuda.synchronize()
            t = time.perf_counter()
            e, m = embedding(embeds, mask, spans)
            transformer(hidden_states=x0.bfloat16(), timestep=torch.tensor([500.0], device=dev),
                        encoder_hidden_states=e.bfloat16(), encoder_attention_mask=m,
                        pooled_projections=Prompt.pooled.bfloat16(), guidance=torch.tensor([6000.0], device=dev),
                        return_dict=False)
            torch.cuda.synchronize()
            if i:
                fwd.append(time.perf_counter() - t)
    sample_peak = torch.cuda.max_memory_allocated() / 1024**3

    name = torch.cuda.get_device_name(0)
    print("| GPU | size | LoRA rank | checkpointing | train step (s) | train peak (GiB) | sampling step (s) | sampling peak (GiB) |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {name} | {height}x{width}x{args.frames} | {args.rank} | {not args.no_checkpointing} | "
          f"{min(rows):.3f} | {train_peak:.1f} | {min(fwd):.3f} | {sample_peak:.1f} |")
    print(f"(build {build_s:.1f} s; trainable {sum(p.numel() for p in params) / 1e6:.1f} M parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
