"""Whisper's special-token layout, and a placeholder tokenizer for random-weight checkpoints.

CTranslate2's converter reads the vocabulary from the checkpoint's tokenizer and finds the special tokens
by name (`<|startoftranscript|>`, `<|endoftext|>`, `<|notimestamps|>`...). A random-weight model built for
speed measurements has no tokenizer, and none can be downloaded here, so `save_placeholder_tokenizer`
writes one with Whisper's multilingual id layout: ids 0..50256 are stand-ins for the BPE pieces (never
decoded to text), the special tokens sit at their real ids, and the converter appends the timestamp tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The 99 language codes of multilingual Whisper (large-v3 adds "yue"; medium has 99), in id order.
LANGUAGES: tuple[str, ...] = (
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr", "pl", "ca", "nl", "ar", "sv", "it", "id",
    "hi", "fi", "vi", "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no", "th", "ur", "hr", "bg",
    "lt", "la", "mi", "ml", "cy", "sk", "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk", "br",
    "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw", "gl", "mr", "pa", "si", "km", "sn", "yo", "so",
    "af", "oc", "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo", "ht", "ps", "tk", "nn", "mt",
    "sa", "lb", "my", "bo", "tl", "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su",
)  # fmt: skip


@dataclass(frozen=True)
class WhisperSpecialTokens:
    """Ids of the tokens the decoding loop needs (multilingual layout unless built otherwise)."""

    eot: int = 50257
    sot: int = 50258
    first_language: int = 50259
    translate: int = 50358
    transcribe: int = 50359
    start_of_prev: int = 50361
    no_timestamps: int = 50363

    def language(self, code: str) -> int:
        return self.first_language + LANGUAGES.index(code)

    def sot_sequence(self, language: str = "en", task: str = "transcribe") -> list[int]:
        """The decoder prompt of a window without timestamps: SOT, language, task, no-timestamps."""
        task_id = self.transcribe if task == "transcribe" else self.translate
        return [self.sot, self.language(language), task_id, self.no_timestamps]


MULTILINGUAL = WhisperSpecialTokens()
N_TEXT_TOKENS = 50257


def placeholder_vocabulary() -> list[str]:
    """Token strings for ids 0..50363 (the converter adds the 1501 timestamp tokens after them)."""
    tokens = [f"<|bpe{i}|>" for i in range(N_TEXT_TOKENS)]
    tokens += ["<|endoftext|>", "<|startoftranscript|>"]
    tokens += [f"<|{code}|>" for code in LANGUAGES]
    tokens += [
        "<|translate|>",
        "<|transcribe|>",
        "<|startoflm|>",
        "<|startofprev|>",
        "<|nocaptions|>",
        "<|notimestamps|>",
    ]
    assert tokens.index("<|notimestamps|>") == MULTILINGUAL.no_timestamps
    return tokens


def save_placeholder_tokenizer(folder: Path) -> None:
    """Write tokenizer.json + tokenizer_config.json that `AutoTokenizer.from_pretrained(folder)` loads."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(placeholder_vocabulary())}
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<|endoftext|>")),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.save_pretrained(str(folder))
