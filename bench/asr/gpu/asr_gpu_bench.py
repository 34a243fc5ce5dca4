"""Streaming-capacity benchmark on one GPU: CTranslate2 Whisper vs the CUDA-graph greedy decoder.

Run on the device machine through scripts/gpu/run_asr_bench.sh (which installs the carried CTranslate2 wheel
and makes its CUDA 12 soname link). Everything is built on the machine: a Whisper-medium-shaped checkpoint
with random weights and its CTranslate2 conversions (float16, int8_float16). Two parts, each its own process
(CTranslate2's allocator keeps its cache until exit, and both engines' buffers need not fit at once):

  --part ct2    correctness: greedy tokens on the same features and weights, ours fp32 vs transformers
                generate fp32 (exact), vs CTranslate2 float32/float16/int8_float16, ours fp16 vs fp32;
                CTranslate2 generate at batch 16..128, 3000 and 1000 frames, int8_float16 / float16, with
                and without its flash attention, greedy, a fixed token budget (end-of-text suppressed),
                encoder-only time; capacity (simulated sweep + a wall-clock run)
  --part torch  our engine: cross-attention variants, encoder (eager, compiled) and graph-replayed decoder
                per bucket, the decoder without graphs once (launch overhead); capacity

Capacity: N sessions x one 5 s window per 5 s, staggered; a simulated sweep over N from the measured batch
times finds the largest N with p95 <= 1.5 s, then the real serving loop runs on the wall clock at that N.
Results go to $OUT/asr_gpu_<part>.json, rewritten after every step, so a timeout keeps what finished.
`--smoke` runs a tiny model with small batches (on CPU it checks the plumbing).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from aistack_asr.gpu.capacity import (
    ServiceTimes,
    max_sessions,
    run_realtime,
    run_realtime_pipelined,
    simulate,
)
from aistack_asr.gpu.checkpoint import MEDIUM, TINY_TEST, build_random_whisper, convert_to_ctranslate2
from aistack_asr.gpu.engine import EngineConfig, Pipeline, ServingEngine
from aistack_asr.gpu.model import GreedyConfig, ServingWhisper
from aistack_asr.gpu.vocab import MULTILINGUAL as SPECIAL

T0 = time.perf_counter()
RESULTS: dict[str, Any] = {"notes": []}
OUT_FILE = Path("/tmp/asr_gpu_out/asr_gpu.json")


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def save() -> None:
    OUT_FILE.write_text(json.dumps(RESULTS, indent=1, default=str))


def sync(dev: str) -> None:
    if dev == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], dev: str, repeat: int, warmup: int = 1) -> tuple[float, Any]:
    """Median wall seconds of `fn` (device synchronized); the result of the last call."""
    out = None
    for _ in range(warmup):
        out = fn()
    sync(dev)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        sync(dev)
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def match_rate(a: list[list[int]], b: list[list[int]]) -> dict[str, float]:
    """Share of windows with identical tokens, and of tokens equal before a window's first divergence."""
    same = sum(x == y for x, y in zip(a, b, strict=True))
    agree = total = 0
    for x, y in zip(a, b, strict=True):
        total += max(len(x), len(y))
        for u, v in zip(x, y, strict=False):
            if u != v:
                break
            agree += 1
    return {"windows_identical": same / len(a), "tokens_before_divergence": agree / max(1, total)}


def environment(dev: str) -> dict[str, Any]:
    env: dict[str, Any] = {"torch": torch.__version__, "python": sys.version.split()[0]}
    try:
        import ctranslate2

        env["ctranslate2"] = ctranslate2.__version__
        env["ct2_cuda_devices"] = ctranslate2.get_cuda_device_count()
    except Exception as e:  # reported, not fatal: the torch engine still runs
        env["ctranslate2_error"] = repr(e)
    import transformers

    env["transformers"] = transformers.__version__
    if dev == "cuda":
        env["gpu"] = torch.cuda.get_device_name()
        env["sm_count"] = torch.cuda.get_device_properties(0).multi_processor_count
        try:
            env["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,memory.total,driver_version,clocks.max.sm", "--format=csv"],
                capture_output=True,
                text=True,
                timeout=20,
            ).stdout.strip()
        except Exception as e:
            env["nvidia_smi"] = repr(e)
    return env


def finish_one(pipe: Pipeline) -> None:
    pipe.finish()


def new_capacity() -> dict[str, Any]:
    return {"period_s": 5.0, "p95_limit_s": 1.5, "simulated": {}, "realtime": []}


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dev = "cuda" if torch.cuda.is_available() else "cpu"
        self.dims = TINY_TEST if args.smoke else MEDIUM
        self.frames_list = [int(f) for f in args.frames.split(",")]
        self.ct2_batches = [int(b) for b in args.ct2_batches.split(",")]
        self.buckets = tuple(int(b) for b in args.torch_buckets.split(","))
        self.dtype = getattr(torch, args.dtype)
        self.prompt = SPECIAL.sot_sequence("pt")
        self.greedy = GreedyConfig(max_new_tokens=args.tokens, suppress_tokens=(SPECIAL.eot,))
        self.gen = torch.Generator(device=self.dev).manual_seed(0)
        work: Path = args.work
        self.ckpt, self.ct2_fp16, self.ct2_int8 = work / "hf", work / "ct2-float16", work / "ct2-int8_float16"

    def features(self, n: int, frames: int) -> torch.Tensor:
        # Log-mel-like scale: real features lie in about [-1.5, 1.5] after Whisper's normalisation.
        x = torch.randn((n, self.dims.n_mels, frames), generator=self.gen, device=self.dev)
        return x.clamp(-1.5, 1.5)

    def over_budget(self, what: str) -> bool:
        if time.perf_counter() - T0 > self.args.budget_s:
            RESULTS["notes"].append(f"skipped {what}: time budget")
            log(f"skip {what} (budget)")
            return True
        return False

    # ---- checkpoint ----------------------------------------------------------------------------------
    def build(self) -> Any:
        """The checkpoint (built once per machine; a second part reuses it). Returns the fp32 HF model."""
        from transformers import WhisperForConditionalGeneration

        if (self.ckpt / "config.json").is_file():
            hf = WhisperForConditionalGeneration.from_pretrained(str(self.ckpt), local_files_only=True)
            torch.nn.Module.to(hf, torch.float32)
            hf.train(False)
            return hf
        t = time.perf_counter()
        # Saved in float16 and reloaded: every engine then runs the very same (fp16-representable) weights.
        hf = build_random_whisper(self.ckpt, self.dims, seed=0, dtype="float16").half().float()
        RESULTS["build_s"] = round(time.perf_counter() - t, 1)
        log(f"checkpoint built in {RESULTS['build_s']} s")
        for q, path in (("float16", self.ct2_fp16), ("int8_float16", self.ct2_int8)):
            t = time.perf_counter()
            convert_to_ctranslate2(self.ckpt, path, q)
            RESULTS[f"convert_{q}_s"] = round(time.perf_counter() - t, 1)
            log(f"converted to {q} in {RESULTS[f'convert_{q}_s']} s")
        return hf

    # ---- CTranslate2 ---------------------------------------------------------------------------------
    def ct2_load(self, compute_type: str, flash: bool = False) -> Any:
        import ctranslate2

        path = self.ct2_int8 if compute_type == "int8_float16" else self.ct2_fp16
        if self.dev == "cpu":
            compute_type = {"float16": "float32", "int8_float16": "int8"}.get(compute_type, compute_type)
            flash = False
        return ctranslate2.models.Whisper(
            str(path), device=self.dev, compute_type=compute_type, flash_attention=flash
        )

    def ct2_generate(self, model: Any, feats: torch.Tensor) -> list[list[int]]:
        import ctranslate2

        arr = feats.contiguous() if self.dev == "cuda" else feats.cpu().numpy()
        res = model.generate(
            ctranslate2.StorageView.from_array(arr),
            [self.prompt] * feats.shape[0],
            beam_size=1,
            max_length=2 * self.args.tokens,  # CTranslate2 decodes min(max_length/2, max_length - prompt)
            suppress_blank=False,
            suppress_tokens=[SPECIAL.eot],
        )
        return [r.sequences_ids[0] for r in res]

    def correctness(self, hf: Any) -> None:
        n, dev, dtype = self.args.check_windows, self.dev, self.dtype
        feats = self.features(n, 3000)
        prompts = [SPECIAL.sot_sequence(lang) for lang in ("pt", "en", "es", "de")] * (n // 4)
        corr: dict[str, Any] = {"windows": n, "tokens": self.args.tokens, "frames": 3000}
        ours32 = ServingWhisper.from_hf_model(hf).to(dev).eval()
        t32 = ServingEngine(ours32, EngineConfig(buckets=(n,), greedy=self.greedy)).run_batch(feats, prompts)
        del ours32
        hf_dev = hf.to(dev)
        with torch.inference_mode():
            out = hf_dev.generate(
                input_features=feats,
                decoder_input_ids=torch.tensor(prompts, device=dev),
                max_new_tokens=self.args.tokens,
                do_sample=False,
                num_beams=1,
                suppress_tokens=[SPECIAL.eot],
                begin_suppress_tokens=None,
            )
        hf_tokens = [row[-self.args.tokens :] for row in out.tolist()]
        hf.to("cpu")
        del hf_dev
        corr["ours_fp32_vs_transformers_fp32"] = match_rate(t32, hf_tokens)
        ours16 = ServingWhisper.from_hf_model(hf).to(dev, dtype).eval()
        t16 = ServingEngine(ours16, EngineConfig(buckets=(n,), greedy=self.greedy)).run_batch(feats, prompts)
        del ours16
        corr[f"ours_{self.args.dtype}_vs_ours_fp32"] = match_rate(t16, t32)
        if dev == "cuda":
            torch.cuda.empty_cache()
        import ctranslate2

        for ct in ("float32", "float16", "int8_float16"):
            path = self.ct2_int8 if ct == "int8_float16" else self.ct2_fp16
            cpu_ct = {"float16": "float32", "int8_float16": "int8"}.get(ct, ct)
            m = ctranslate2.models.Whisper(
                str(path), device=dev, compute_type=ct if dev == "cuda" else cpu_ct
            )
            res = m.generate(
                ctranslate2.StorageView.from_array(
                    feats.contiguous() if dev == "cuda" else feats.cpu().numpy()
                ),
                prompts,
                beam_size=1,
                max_length=2 * self.args.tokens,
                suppress_blank=False,
                suppress_tokens=[SPECIAL.eot],
            )
            got = [r.sequences_ids[0] for r in res]
            corr[f"ct2_{ct}_vs_ours_fp32"] = match_rate(got, t32)
            if ct != "float32":
                corr[f"ct2_{ct}_vs_ours_{self.args.dtype}"] = match_rate(got, t16)
            del m
        corr["distinct_windows_fp32"] = len({tuple(t) for t in t32})
        corr["sample_ours_fp32"] = t32[:2]
        corr["sample_transformers_fp32"] = hf_tokens[:2]
        RESULTS["correctness"] = corr
        log(f"correctness {json.dumps({k: v for k, v in corr.items() if not k.startswith('sample')})}")
        save()

    def ct2_part(self) -> None:
        hf = self.build()
        save()
        if "correctness" not in self.args.skip:
            self.correctness(hf)
        del hf
        variants = [(v.split("+")[0], v.endswith("+flash")) for v in self.args.ct2_variants.split(",")]
        times: dict[str, dict[int, float]] = {}
        rows = RESULTS.setdefault("ct2", [])
        for ct, flash in variants:
            try:
                model = self.ct2_load(ct, flash)
            except Exception as e:
                RESULTS["notes"].append(f"ct2 {ct} flash={flash}: {e!r}")
                continue
            for frames in self.frames_list:
                key = f"ct2_{ct}{'_flash' if flash else ''}_{frames}"
                for b in self.ct2_batches:
                    if self.over_budget(f"{key} b{b}"):
                        break
                    feats = self.features(b, frames)
                    try:
                        sec, out = timed(partial(self.ct2_generate, model, feats), self.dev, repeat=2)
                    except RuntimeError as e:  # e.g. flash attention not compiled into the PyPI wheel
                        RESULTS["notes"].append(f"{key}: {e}")
                        log(f"{key}: {e}")
                        break
                    row: dict[str, Any] = {
                        "engine": key,
                        "compute_type": ct,
                        "flash_attention": flash,
                        "frames": frames,
                        "batch": b,
                        "batch_s": round(sec, 4),
                        "windows_per_s": round(b / sec, 1),
                        "tokens_per_window": statistics.mean(len(x) for x in out),
                    }
                    if b in (64, self.ct2_batches[-1]):
                        import ctranslate2

                        arr = feats if self.dev == "cuda" else feats.cpu().numpy()
                        sv = ctranslate2.StorageView.from_array(arr)
                        enc_s, _ = timed(partial(model.encode, sv, to_cpu=False), self.dev, repeat=2)
                        row["encoder_s"] = round(enc_s, 4)
                    times.setdefault(key, {})[b] = sec
                    rows.append(row)
                    log(f"ct2 {row}")
                    save()
            del model
        cap = RESULTS.setdefault(
            "capacity", {"period_s": 5.0, "p95_limit_s": 1.5, "simulated": {}, "realtime": []}
        )
        for key, pts in times.items():
            svc = ServiceTimes(pts)
            n, _ = max_sessions(svc, svc.max_batch)
            cap["simulated"][key] = {
                "max_sessions": n,
                "at_max": simulate(n, svc, svc.max_batch).as_dict() if n else None,
                "points": {b: round(s, 4) for b, s in pts.items()},
            }
        log(f"simulated {json.dumps({k: v['max_sessions'] for k, v in cap['simulated'].items()})}")
        save()
        # Wall clock: the service's configuration, and CTranslate2's best, at the first input length.
        f0 = self.frames_list[0]
        best = max(
            (k for k in times if k.endswith(f"_{f0}")),
            key=lambda k: cap["simulated"][k]["max_sessions"],
            default=None,
        )
        for key in dict.fromkeys(k for k in (f"ct2_int8_float16_{f0}", best) if k is not None):
            if key not in times or self.over_budget(f"realtime {key}"):
                continue
            ct = "float16" if key.startswith("ct2_float16") else "int8_float16"
            model = self.ct2_load(ct, "_flash_" in key)
            mb = max(times[key])
            pool = self.features(mb, f0)
            n = cap["simulated"][key]["max_sessions"]

            def run(k: int, model: Any = model, pool: torch.Tensor = pool) -> None:
                self.ct2_generate(model, pool[:k])

            if n > 0:
                r = run_realtime(n, run, mb, duration_s=self.args.realtime_s)
                cap["realtime"].append({"engine": key, **r.as_dict()})
                log(f"realtime {key} {r.as_dict()}")
                save()
            del model

    # ---- our engine ----------------------------------------------------------------------------------
    def measure_buckets(
        self, eng: ServingEngine, frames: int, buckets: Sequence[int], label: str, encoder: bool = True
    ) -> dict[str, dict[int, float]]:
        per: dict[str, dict[int, float]] = {"encoder": {}, "decoder": {}}
        steps = len(self.prompt) - 1 + self.args.tokens
        for b in buckets:
            if self.over_budget(f"torch {label} {frames} b{b}"):
                break
            feats = self.features(b, frames)
            enc_s, enc = timed(partial(eng.encode, feats), self.dev, repeat=3)
            dec_s, out = timed(
                partial(eng.decode, enc, [self.prompt] * b, early_stop=False), self.dev, repeat=3
            )
            per["encoder"][b], per["decoder"][b] = enc_s, dec_s
            row = {
                "variant": label,
                "frames": frames,
                "batch": b,
                "encoder_s": round(enc_s, 4),
                "decoder_s": round(dec_s, 4),
                "batch_s": round(enc_s + dec_s, 4),
                "windows_per_s": round(b / (enc_s + dec_s), 1),
                "decoder_step_ms": round(1000 * dec_s / steps, 3),
                "tokens_per_window": statistics.mean(len(x) for x in out),
            }
            RESULTS.setdefault("torch", []).append(row)
            log(f"torch {row}")
            save()
        return per

    def mem(self, where: str) -> None:
        if self.dev == "cuda":
            gib = torch.cuda.memory_allocated() / 2**30
            RESULTS.setdefault("torch_memory_gib", {})[where] = round(gib, 2)
            log(f"memory {where}: {gib:.2f} GiB allocated")

    def compile_check(self, base: ServingWhisper) -> bool:
        """Time a torch.compile'd encoder (dynamic batch: one compile for every size); keep it if faster."""
        b = 64 if 64 in self.buckets else self.buckets[-1]
        frames = self.frames_list[0]
        feats = self.features(b, frames)
        eager_s, ref = timed(lambda: base.encode(feats), self.dev, repeat=3)
        t = time.perf_counter()
        base.compile_encoder(dynamic=True)
        compiled = False
        try:
            with torch.inference_mode():
                base.encode(feats)
            sync(self.dev)
            compile_s = time.perf_counter() - t
            comp_s, out = timed(lambda: base.encode(feats), self.dev, repeat=3)
            other = self.features(b // 2, frames)  # another batch size: no recompile expected
            t = time.perf_counter()
            with torch.inference_mode():
                base.encode(other)
            sync(self.dev)
            other_s = time.perf_counter() - t
            # Batch 1 is specialised by dynamo (a second compile): pay it here, not in a serving loop.
            t = time.perf_counter()
            with torch.inference_mode():
                base.encode(other[:1])
            sync(self.dev)
            RESULTS["encoder_compile_batch1_s"] = round(time.perf_counter() - t, 1)
            err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
            RESULTS["encoder_compiled"] = {
                "batch": b,
                "frames": frames,
                "eager_s": round(eager_s, 4),
                "compiled_s": round(comp_s, 4),
                "compile_s": round(compile_s, 1),
                "first_call_other_batch_s": round(other_s, 2),
                "rel_err_vs_eager": err,
            }
            compiled = comp_s < 0.97 * eager_s and err < 2e-2
        except Exception as e:
            RESULTS["encoder_compiled"] = {"error": repr(e)[:2000]}
        if not compiled:
            base._compiled_encoder = None
        RESULTS["encoder_compiled"]["used"] = compiled
        log(f"compiled encoder {RESULTS['encoder_compiled']}")
        save()
        return compiled

    def pipeline_throughput(self, eng: ServingEngine, frames: int, b: int, turns: int = 6) -> float:
        """Steady-state seconds per batch with encoder(k+1) overlapping decoder(k)."""
        pipe = Pipeline(eng)
        feats = self.features(b, frames)
        prompts = [self.prompt] * b
        pipe.submit(feats, prompts)
        pipe.submit(feats, prompts)
        pipe.finish()
        sync(self.dev)
        t = time.perf_counter()
        for _ in range(turns):
            pipe.submit(feats, prompts)
            pipe.finish()
        sync(self.dev)
        per = (time.perf_counter() - t) / turns
        pipe.finish()
        return per

    def torch_part(self) -> None:
        hf = self.build()
        base = ServingWhisper.from_hf_model(hf).to(self.dev, self.dtype).eval()
        del hf
        save()
        self.mem("weights")
        compiled = False
        if self.args.compile and self.dev == "cuda":
            compiled = self.compile_check(base)
            self.mem("after compile check")
        cfg = {f: EngineConfig(frames=f, buckets=self.buckets, greedy=self.greedy) for f in self.frames_list}
        if self.args.probe_cross:
            # Cross-attention variant, at two batch sizes (30 s windows: where cross-attention costs most).
            probe = tuple(b for b in (64, self.buckets[-1]) if b in self.buckets) or self.buckets[-1:]
            best_impl, best_t = "sdpa", float("inf")
            for impl in ("matmul", "sdpa"):
                base.cross_attention = impl
                base.reset_buffers()
                eng = ServingEngine(base, EngineConfig(frames=3000, buckets=probe, greedy=self.greedy))
                eng.warm_up()
                per = self.measure_buckets(eng, 3000, probe, f"cross={impl}")
                t = sum(per["decoder"].values())
                if per["decoder"] and t < best_t:
                    best_impl, best_t = impl, t
            del eng
            base.cross_attention = best_impl
            base.reset_buffers()
            gc.collect()
            if self.dev == "cuda":
                torch.cuda.empty_cache()
            self.mem("after cross-attention probe")
        RESULTS["torch_cross_attention"] = base.cross_attention
        # Every bucket, both input lengths; the decoder without graphs once.
        engines: dict[int, ServingEngine] = {}
        measured: dict[int, dict[str, dict[int, float]]] = {}
        for frames in self.frames_list:
            if self.over_budget(f"torch {frames}"):
                break
            eng = ServingEngine(base, cfg[frames])
            t = time.perf_counter()
            eng.warm_up()
            RESULTS.setdefault("torch_capture_s", {})[frames] = round(time.perf_counter() - t, 2)
            self.mem(f"after warm-up {frames}")
            if compiled:
                # Each input length compiles once, and batch 1 once more: pay both here, not while serving.
                t = time.perf_counter()
                for n in (2, 1):
                    eng.encode(self.features(n, frames))
                sync(self.dev)
                spent = round(time.perf_counter() - t, 1)
                RESULTS.setdefault("encoder_compile_per_frames_s", {})[frames] = spent
            engines[frames] = eng
            measured[frames] = self.measure_buckets(
                eng, frames, self.buckets, f"cross={base.cross_attention}"
            )
            self.mem(f"after sweep {frames}")
            b = 64 if 64 in self.buckets else self.buckets[len(self.buckets) // 2]
            if b in measured[frames]["decoder"] and not self.over_budget("no-graph decode"):
                enc = eng.encode(self.features(b, frames))
                dec_s, _ = timed(
                    partial(eng.decode, enc, [self.prompt] * b, early_stop=False, graphs=False),
                    self.dev,
                    repeat=2,
                )
                del enc
                with_graphs = measured[frames]["decoder"][b]
                RESULTS.setdefault("torch_no_graphs", []).append(
                    {"frames": frames, "batch": b, "decoder_s": round(dec_s, 4), "with_graphs_s": with_graphs}
                )
                log(f"no graphs: frames {frames} batch {b}: decoder {dec_s:.4f}s vs {with_graphs:.4f}s with")
            # Two batches in flight: steady-state time per batch.
            for b in (128, self.buckets[-1]):
                if (
                    self.args.pipelined
                    and b in measured[frames]["decoder"]
                    and not self.over_budget("pipeline")
                ):
                    per_s = self.pipeline_throughput(eng, frames, b)
                    row = {
                        "frames": frames,
                        "batch": b,
                        "turn_s": round(per_s, 4),
                        "windows_per_s": round(b / per_s, 1),
                        "serial_s": round(measured[frames]["encoder"][b] + measured[frames]["decoder"][b], 4),
                    }
                    RESULTS.setdefault("torch_pipelined", []).append(row)
                    log(f"pipelined {row}")
            save()
        # Capacity: simulated sweep (serial loop), then the real loops on the wall clock.
        cap = RESULTS.setdefault(
            "capacity", {"period_s": 5.0, "p95_limit_s": 1.5, "simulated": {}, "realtime": []}
        )
        name = f"torch_{self.args.dtype}{'_compiled' if compiled else ''}"
        for frames, per in measured.items():
            if not per["decoder"]:
                continue
            enc_pts, dec = ServiceTimes(per["encoder"]), per["decoder"]
            top = max(dec)

            def svc(n: int, enc_pts: ServiceTimes = enc_pts, dec: dict[int, float] = dec) -> float:
                return enc_pts(n) + dec[min(b for b in dec if b >= n)]

            n, _ = max_sessions(svc, top)
            cap["simulated"][f"{name}_{frames}"] = {
                "max_sessions": n,
                "at_max": simulate(n, svc, top).as_dict() if n else None,
                "at_1000": simulate(1000, svc, top).as_dict(),
            }
        log(f"simulated {json.dumps({k: v['max_sessions'] for k, v in cap['simulated'].items()})}")
        save()
        for frames, eng in engines.items():
            key = f"{name}_{frames}"
            if key not in cap["simulated"]:
                continue
            pool = self.features(eng.max_batch, frames)
            pipe = Pipeline(eng)

            def run(n: int, eng: ServingEngine = eng, pool: torch.Tensor = pool) -> None:
                eng.run_batch(pool[:n], [self.prompt] * n)

            def submit(n: int, pipe: Pipeline = pipe, pool: torch.Tensor = pool) -> None:
                pipe.submit(pool[:n], [self.prompt] * n)

            sim_n = cap["simulated"][key]["max_sessions"]
            piped = [r for r in RESULTS.get("torch_pipelined", []) if r["frames"] == frames]
            # Pipelined estimate: 85% of the steady-state rate, as sessions (one window per 5 s each).
            est = int(0.85 * 5.0 * max((r["windows_per_s"] for r in piped), default=0.0))
            if self.args.realtime_n:
                plan = [("serial", int(n)) for n in self.args.realtime_n.split(",")]
            else:
                plan = [("serial", n) for n in sorted({sim_n, 1000} if frames == 3000 else {sim_n})]
            if self.args.pipelined:
                plan += [("pipelined", n) for n in sorted({1000, est} if frames == 3000 else {est})]
            for mode, n in plan:
                if n <= 0 or self.over_budget(f"realtime {key} {mode} N={n}"):
                    continue
                if mode == "serial":
                    r = run_realtime(n, run, eng.max_batch, duration_s=self.args.realtime_s)
                else:
                    r = run_realtime_pipelined(
                        n,
                        submit,
                        pipe.wait_encoded,
                        partial(finish_one, pipe),
                        eng.max_batch,
                        duration_s=self.args.realtime_s,
                    )
                    while len(pipe):
                        pipe.finish()
                cap["realtime"].append({"engine": f"{key}_{mode}", **r.as_dict()})
                log(f"realtime {key} {mode} {r.as_dict()}")
                save()


def main() -> None:
    global OUT_FILE
    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=["ct2", "torch"], required=True)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/asr_gpu_out")))
    ap.add_argument("--work", type=Path, default=Path("/tmp/asr_gpu_work"))
    ap.add_argument("--smoke", action="store_true", help="tiny model, small batches: plumbing only")
    ap.add_argument("--skip", default="", help="comma-separated steps to skip (correctness)")
    ap.add_argument("--tokens", type=int, default=24, help="generated tokens per window (fixed budget)")
    ap.add_argument("--check-windows", type=int, default=32)
    ap.add_argument("--ct2-batches", default="16,32,64,128")
    ap.add_argument("--torch-buckets", default="8,16,32,48,64,96,128,160,192")
    ap.add_argument("--frames", default="3000,1000")
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--compile", action="store_true", help="try a torch.compile'd encoder, keep it if faster")
    ap.add_argument("--probe-cross", action="store_true", help="time matmul vs SDPA cross-attention first")
    ap.add_argument("--realtime-s", type=float, default=25.0)
    ap.add_argument(
        "--realtime-n", default="", help="session counts for the wall-clock runs (default: simulated N)"
    )
    ap.add_argument("--pipelined", action="store_true", help="also time the two-batch pipeline")
    ap.add_argument("--ct2-variants", default="int8_float16,int8_float16+flash,float16+flash")
    ap.add_argument("--budget-s", type=float, default=400.0, help="skip remaining work past this")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    OUT_FILE = args.out / f"asr_gpu_{args.part}.json"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    bench = Bench(args)
    RESULTS.update(
        part=args.part,
        device=bench.dev,
        smoke=args.smoke,
        dims=bench.dims.__dict__,
        tokens_per_window=args.tokens,
        env=environment(bench.dev),
    )
    log(f"env {RESULTS['env']}")
    save()
    try:
        bench.ct2_part() if args.part == "ct2" else bench.torch_part()
    except Exception:
        RESULTS["fatal"] = traceback.format_exc()
        save()
        raise
    RESULTS["total_s"] = round(time.perf_counter() - T0, 1)
    save()
    log("done")


if __name__ == "__main__":
    main()
