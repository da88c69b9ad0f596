"""``train(cfg)``: run the configured stage (``mae_stage``, ``tokenizer_stage``, ``vae_stage``, ``flow_stage``,
``enhance_stage``; what they share is in ``run.py``), single process or under torchrun."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist

from dashtok.train.config import TrainConfig
from dashtok.train.run import setup_distributed


def train(cfg: TrainConfig) -> Path:
    """Run the configured stage; under torchrun, every rank waits for the others before the process group closes."""
    rank, world = setup_distributed()
    out = _train_stage(cfg, rank, world)
    if world > 1 and dist.is_initialized():
        # rank 0 writes the final export after the last step; a rank that leaves gloo early aborts the others
        dist.barrier()
        dist.destroy_process_group()
    return out


def _train_stage(cfg: TrainConfig, rank: int, world: int) -> Path:
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.max_minutes and world > 1:
        raise ValueError("max_minutes is for single-process runs (ranks could stop at different steps)")
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is not divisible by the {world} processes")
    if rank == 0:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    if cfg.stage == "mae":
        from dashtok.train.mae_stage import run_mae

        return run_mae(cfg, rank, world)
    if cfg.stage == "tokenizer":
        from dashtok.train.tokenizer_stage import run_tokenizer

        return run_tokenizer(cfg, rank, world)
    if cfg.stage == "vae":
        from dashtok.train.vae_stage import run_vae

        return run_vae(cfg, rank, world)
    if cfg.stage == "flow":
        from dashtok.train.flow_stage import run_flow

        return run_flow(cfg, rank, world)
    if cfg.stage == "enhance":
        from dashtok.train.enhance_stage import run_enhance

        return run_enhance(cfg, rank, world)
    raise AssertionError(f"stage {cfg.stage!r} passed TrainConfig's check but has no loop here")
