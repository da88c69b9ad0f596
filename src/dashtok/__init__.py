"""dashtok: an open, trainable implementation of DashengTokenizer (Dinkel et al., 2026)."""

from dashtok.config import (
    DecoderConfig,
    EncoderConfig,
    FrontendConfig,
    InjectionConfig,
    TokenizerConfig,
)
from dashtok.tokenizer import DecodeOutput, EncodeOutput, Tokenizer
from dashtok.version import __version__

__all__ = [
    "DecodeOutput",
    "DecoderConfig",
    "EncodeOutput",
    "EncoderConfig",
    "FrontendConfig",
    "InjectionConfig",
    "Tokenizer",
    "TokenizerConfig",
    "__version__",
]
