"""A greedy Whisper decoder built for serving many streaming sessions on one GPU.

CTranslate2 (the engine behind faster-whisper) runs each decode step as dozens of separate kernel launches
and re-reads nothing it could keep; at the batch sizes streaming needs, the step is launch-bound. This
package keeps the same weights (loaded from a transformers Whisper checkpoint, the one CTranslate2 converts)
and runs them with a static KV cache, cross-attention K/V computed once per window, and the decode steps
captured as CUDA graphs per batch-size bucket. See docs/asr-gpu.md for the method and the numbers.

Only `torch` is needed to run it; `transformers` is needed to load a checkpoint folder.
"""

from aistack_asr.gpu.model import GreedyConfig, ServingWhisper, WhisperDims
from aistack_asr.gpu.vocab import WhisperSpecialTokens

__all__ = ["GreedyConfig", "ServingWhisper", "WhisperDims", "WhisperSpecialTokens"]
