"""The serving decoder gives transformers' and CTranslate2's greedy tokens, on CPU with a tiny random Whisper.

The same code runs on the GPU with CUDA graphs (bench/asr/gpu, docs/asr-gpu.md); here the steps run
eagerly, which is what the graphs record. The weights are random but spread (see `_spread_weights`), so
the tokens depend on the audio features, the language token and the history: a wrong cache position,
mask, cross-attention slot or suppression rule changes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from aistack_asr.gpu.checkpoint import TINY_TEST, build_random_whisper, convert_to_ctranslate2  # noqa: E402
from aistack_asr.gpu.engine import EngineConfig, Pipeline, ServingEngine  # noqa: E402
from aistack_asr.gpu.model import GreedyConfig, ServingWhisper  # noqa: E402
from aistack_asr.gpu.vocab import MULTILINGUAL as S  # noqa: E402
from aistack_asr.gpu.vocab import placeholder_vocabulary  # noqa: E402

NEW = 10


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    # One thread: the tiny ops gain nothing from intra-op threads, and on a shared CPU they wait for them.
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny-whisper")
    return folder, build_random_whisper(folder, TINY_TEST, seed=3)


@pytest.fixture(scope="module")
def features() -> Any:
    g = torch.Generator().manual_seed(7)
    return torch.randn((4, 80, 3000), generator=g).clamp(-1.5, 1.5)


def hf_greedy(hf: Any, feats: Any, prompt: list[int], suppress: list[int]) -> list[list[int]]:
    with torch.inference_mode():
        out = hf.generate(
            input_features=feats,
            decoder_input_ids=torch.tensor([prompt] * feats.shape[0]),
            max_new_tokens=NEW,
            do_sample=False,
            num_beams=1,
            suppress_tokens=suppress or None,
            begin_suppress_tokens=None,
        )
    rows = []
    for row in out.tolist():
        gen = row[-NEW:] if len(row) > NEW else row
        rows.append(gen[: gen.index(S.eot)] if S.eot in gen else gen)
    return rows


def test_placeholder_vocabulary_has_whisper_ids() -> None:
    vocab = placeholder_vocabulary()
    assert vocab[S.eot] == "<|endoftext|>"
    assert vocab[S.sot] == "<|startoftranscript|>"
    assert vocab[S.language("pt")] == "<|pt|>"
    assert vocab[S.transcribe] == "<|transcribe|>"
    assert len(vocab) == S.no_timestamps + 1


def test_encoder_matches_transformers(checkpoint: tuple[Path, Any], features: Any) -> None:
    _, hf = checkpoint
    ours = ServingWhisper.from_hf_model(hf).eval()
    with torch.inference_mode():
        a = ours.encode(features[:2])
        b = hf.model.encoder(features[:2]).last_hidden_state
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("language", "cross_attention"), [("pt", "matmul"), ("en", "matmul"), ("pt", "sdpa")]
)
def test_fixed_budget_tokens_equal_transformers_generate(
    checkpoint: tuple[Path, Any], features: Any, language: str, cross_attention: str
) -> None:
    _, hf = checkpoint
    ours = ServingWhisper.from_hf_model(hf).eval()
    ours.cross_attention = cross_attention
    ours.steps_per_graph = 4  # 3 prompt steps + 10 new: three chunks and a one-step remainder
    prompt = S.sot_sequence(language)
    greedy = GreedyConfig(max_new_tokens=NEW, suppress_tokens=(S.eot,))
    mine = ours.transcribe_tokens(features, [prompt] * 4, greedy, early_stop=False)
    ref = hf_greedy(hf, features, prompt, [S.eot])
    assert mine == ref
    assert all(len(t) == NEW for t in mine)
    # The tokens depend on the audio: otherwise this comparison would prove little.
    assert len({tuple(t) for t in mine}) > 1


def test_end_of_text_stops_each_window_like_transformers(checkpoint: tuple[Path, Any], features: Any) -> None:
    folder, hf = checkpoint
    # Make end-of-text win wherever a token the model often picks would: then windows end at different steps.
    ours = ServingWhisper.from_hf_model(hf).eval()
    prompt = S.sot_sequence("pt")
    free = ours.transcribe_tokens(features, [prompt] * 4, GreedyConfig(max_new_tokens=NEW), early_stop=False)
    target = free[0][2]
    from transformers import WhisperForConditionalGeneration

    hf2 = WhisperForConditionalGeneration.from_pretrained(str(folder))
    hf2.train(False)
    with torch.no_grad():
        emb = hf2.model.decoder.embed_tokens.weight
        emb[S.eot] = emb[target] * 1.05
    ours2 = ServingWhisper.from_hf_model(hf2).eval()
    ref = hf_greedy(hf2, features, prompt, [])
    for early_stop in (False, True):
        mine = ours2.transcribe_tokens(
            features, [prompt] * 4, GreedyConfig(max_new_tokens=NEW), early_stop=early_stop
        )
        assert mine == ref
    assert any(len(t) < NEW for t in ref), "end-of-text never came: the test would not test stopping"


def test_tokens_equal_ctranslate2(checkpoint: tuple[Path, Any], features: Any, tmp_path: Path) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    folder, hf = checkpoint
    ct2_dir = convert_to_ctranslate2(folder, tmp_path / "ct2", "float32")
    model = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    prompts = [S.sot_sequence("pt"), S.sot_sequence("en"), S.sot_sequence("es"), S.sot_sequence("pt")]
    res = model.generate(
        ctranslate2.StorageView.from_array(features.numpy()),
        prompts,
        beam_size=1,
        max_length=2 * NEW,  # CTranslate2 decodes min(max_length / 2, max_length - prompt) tokens
        suppress_blank=False,
        suppress_tokens=[S.eot],
    )
    theirs = [r.sequences_ids[0] for r in res]
    ours = ServingWhisper.from_hf_model(hf).eval()
    mine = ours.transcribe_tokens(
        features, prompts, GreedyConfig(max_new_tokens=NEW, suppress_tokens=(S.eot,))
    )
    assert mine == theirs


def test_padding_slots_order_and_mixed_prompts_do_not_leak(
    checkpoint: tuple[Path, Any], features: Any
) -> None:
    _, hf = checkpoint
    ours = ServingWhisper.from_hf_model(hf).eval()
    greedy = GreedyConfig(max_new_tokens=NEW, suppress_tokens=(S.eot,))
    # A window whose prompt carries the previous window's text, next to plain ones: per-slot positions.
    prev = [S.start_of_prev, 11, 22, 33, *S.sot_sequence("pt")]
    prompts = [S.sot_sequence("pt"), prev, S.sot_sequence("en")]
    feats = features[:3]
    batched = ours.transcribe_tokens(feats, prompts, greedy, bucket=8, max_tokens=40)
    alone = [ours.transcribe_tokens(feats[i : i + 1], [p], greedy)[0] for i, p in enumerate(prompts)]
    assert batched == alone
    order = [2, 0, 1]
    permuted = ours.transcribe_tokens(
        feats[order], [prompts[i] for i in order], greedy, bucket=4, max_tokens=40
    )
    assert permuted == [batched[i] for i in order]
    assert hf_greedy(hf, feats[1:2], prev, [S.eot]) == [batched[1]]


def test_engine_buckets_and_limits(checkpoint: tuple[Path, Any], features: Any) -> None:
    _, hf = checkpoint
    greedy = GreedyConfig(max_new_tokens=4, suppress_tokens=(S.eot,))
    engine = ServingEngine(
        ServingWhisper.from_hf_model(hf).eval(), EngineConfig(buckets=(2, 4), greedy=greedy)
    )
    engine.warm_up()
    assert engine.bucket_for(1) == 2 and engine.bucket_for(3) == 4
    with pytest.raises(ValueError, match="largest bucket"):
        engine.bucket_for(5)
    with pytest.raises(ValueError, match="max_prompt_tokens"):
        engine.run_batch(features[:1], [[S.start_of_prev, 1, *S.sot_sequence()]])
    with pytest.raises(ValueError, match="frames"):
        engine.run_batch(features[:1, :, :1000], [S.sot_sequence()])
    out = engine.run_batch(features[:3], [S.sot_sequence("pt")] * 3)
    assert [len(t) for t in out] == [4, 4, 4]
    with pytest.raises(ValueError, match="increasing"):
        ServingEngine(engine.model, EngineConfig(buckets=(4, 2)))
    # Two batches in flight give the same tokens, oldest first.
    pipe = Pipeline(engine)
    pipe.submit(features[:3], [S.sot_sequence("pt")] * 3)
    pipe.submit(features[3:], [S.sot_sequence("en")])
    assert pipe.finish() == out
    assert pipe.finish() == engine.run_batch(features[3:], [S.sot_sequence("en")])
    assert len(pipe) == 0


def test_shorter_input_runs_like_ctranslate2(
    checkpoint: tuple[Path, Any], features: Any, tmp_path: Path
) -> None:
    """1000 frames (a 10 s bucket): the encoder positions are sliced, as CTranslate2 does."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    folder, hf = checkpoint
    ct2_dir = convert_to_ctranslate2(folder, tmp_path / "ct2", "float32")
    model = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type="float32")
    short = features[:2, :, :1000].contiguous()
    prompt = S.sot_sequence("pt")
    res = model.generate(
        ctranslate2.StorageView.from_array(short.numpy()),
        [prompt] * 2,
        beam_size=1,
        max_length=2 * NEW,
        suppress_blank=False,
        suppress_tokens=[S.eot],
    )
    ours = ServingWhisper.from_hf_model(hf).eval()
    mine = ours.transcribe_tokens(
        short, [prompt] * 2, GreedyConfig(max_new_tokens=NEW, suppress_tokens=(S.eot,))
    )
    assert mine == [r.sequences_ids[0] for r in res]
