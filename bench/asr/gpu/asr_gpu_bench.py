"""Streaming-capacity benchmark on one GPU: CTranslate2 Whisper vs the CUDA-graph greedy decoder.

Run on the device machine through scripts/gpu/run_asr_bench.sh (which installs the carried CTranslate2 wheel
and makes its CUDA 12 soname link). Everything is built on the machine: a Whisper-medium-shaped checkpoint
with random weights, its CTranslate2 conversions (float16, int8_float16), then

  correctness  greedy tokens on the same features and weights: ours fp32 vs transformers generate fp32
               (exact), vs CTranslate2 (float32/float16/int8_float16), ours fp16 vs fp32 (match rates)
  ct2          CTranslate2 generate, batch 16..128, 3000 and 1000 frames, float16 / int8_float16,
               greedy, a fixed token budget (end-of-text suppressed), plus encoder-only time
  torch        our engine: encoder (eager, compiled) and graph-replayed decoder per bucket; the decoder
               without graphs once, to show the launch overhead
  capacity     N sessions x one 5 s window per 5 s: simulated sweep from the measured batch times, and
               one wall-clock run of the real serving loop at the reported N

Results go to $OUT/asr_gpu_bench.json (rewritten after every phase, so a timeout keeps what finished).
`--smoke` runs every phase on a tiny model and small batches (on CPU it checks the plumbing here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from aistack_asr.gpu.capacity import ServiceTimes, max_sessions, run_realtime, simulate
from aistack_asr.gpu.checkpoint import MEDIUM, TINY_TEST, build_random_whisper, convert_to_ctranslate2
from aistack_asr.gpu.engine import EngineConfig, ServingEngine
from aistack_asr.gpu.model import GreedyConfig, ServingWhisper
from aistack_asr.gpu.vocab import MULTILINGUAL as SPECIAL

T0 = time.perf_counter()
RESULTS: dict[str, Any] = {}


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def save(out: Path) -> None:
    (out / "asr_gpu_bench.json").write_text(json.dumps(RESULTS, indent=1, default=str))


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/asr_gpu_out")))
    ap.add_argument("--work", type=Path, default=Path("/tmp/asr_gpu_work"))
    ap.add_argument("--smoke", action="store_true", help="tiny model, small batches: plumbing only")
    ap.add_argument("--phases", default="build,correctness,ct2,torch,capacity")
    ap.add_argument("--tokens", type=int, default=24, help="generated tokens per window (fixed budget)")
    ap.add_argument("--ct2-batches", default="16,32,64,128")
    ap.add_argument("--torch-buckets", default="8,16,32,48,64,96,128,160,192")
    ap.add_argument("--frames", default="3000,1000")
    ap.add_argument("--dtype", default="float16")
    ap.add_argument("--compile", action="store_true", help="also time a torch.compile'd encoder")
    ap.add_argument("--realtime-s", type=float, default=25.0)
    ap.add_argument("--budget-s", type=float, default=480.0, help="skip remaining work past this")
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    phases = set(args.phases.split(","))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_num_threads(max(1, os.cpu_count() or 1))

    dims = TINY_TEST if args.smoke else MEDIUM
    frames_list = [int(f) for f in args.frames.split(",")]
    ct2_batches = [int(b) for b in args.ct2_batches.split(",")]
    buckets = tuple(int(b) for b in args.torch_buckets.split(","))
    dtype = getattr(torch, args.dtype)
    RESULTS.update(
        device=dev,
        smoke=args.smoke,
        dims=dims.__dict__,
        tokens_per_window=args.tokens,
        env=environment(dev),
        notes=[],
    )
    log(f"env {RESULTS['env']}")
    save(args.out)

    ckpt, ct2_fp16, ct2_int8 = args.work / "hf", args.work / "ct2-float16", args.work / "ct2-int8_float16"
    t = time.perf_counter()
    # Saved in float16 and reloaded: every engine then runs the very same (fp16-representable) weights.
    hf = build_random_whisper(ckpt, dims, seed=0, dtype="float16").half().float()
    RESULTS["build_s"] = round(time.perf_counter() - t, 1)
    log(f"checkpoint built in {RESULTS['build_s']} s")
    have_ct2 = "ctranslate2" in RESULTS["env"]
    if have_ct2:
        for q, path in (("float16", ct2_fp16), ("int8_float16", ct2_int8)):
            t = time.perf_counter()
            convert_to_ctranslate2(ckpt, path, q)
            RESULTS[f"convert_{q}_s"] = round(time.perf_counter() - t, 1)
            log(f"converted to {q} in {RESULTS[f'convert_{q}_s']} s")
    save(args.out)

    prompt = SPECIAL.sot_sequence("pt")
    budget = GreedyConfig(max_new_tokens=args.tokens, suppress_tokens=(SPECIAL.eot,))
    gen = torch.Generator(device=dev).manual_seed(0)

    def features(n: int, frames: int) -> torch.Tensor:
        # Log-mel-like scale; real features are in [-1.5, 1.5] after Whisper's normalisation.
        return torch.randn((n, dims.n_mels, frames), generator=gen, device=dev).clamp(-1.5, 1.5)

    ct2_models: dict[str, Any] = {}

    def ct2_model(compute_type: str) -> Any:
        import ctranslate2

        if compute_type not in ct2_models:
            path = ct2_int8 if compute_type == "int8_float16" else ct2_fp16
            if dev == "cpu":
                compute_type = {"float16": "float32", "int8_float16": "int8"}.get(compute_type, compute_type)
            ct2_models[compute_type] = ctranslate2.models.Whisper(
                str(path), device=dev, compute_type=compute_type
            )
        return ct2_models[compute_type]

    def ct2_generate(model: Any, feats: torch.Tensor, n_prompts: int) -> list[list[int]]:
        import ctranslate2

        sv = ctranslate2.StorageView.from_array(feats.contiguous() if dev == "cuda" else feats.cpu().numpy())
        res = model.generate(
            sv,
            [prompt] * n_prompts,
            beam_size=1,
            max_length=2 * args.tokens,  # CTranslate2 decodes min(max_length/2, max_length - prompt) tokens
            suppress_blank=False,
            suppress_tokens=[SPECIAL.eot],
        )
        return [r.sequences_ids[0] for r in res]

    def over_budget(what: str) -> bool:
        if time.perf_counter() - T0 > args.budget_s:
            RESULTS["notes"].append(f"skipped {what}: time budget")
            log(f"skip {what} (budget)")
            return True
        return False

    # ---- correctness ---------------------------------------------------------------------------------
    if "correctness" in phases:
        n = 8
        feats = features(n, 3000)
        corr: dict[str, Any] = {"windows": n, "tokens": args.tokens, "frames": 3000}
        ours32 = ServingWhisper.from_hf_model(hf).to(dev).eval()
        eng32 = ServingEngine(ours32, EngineConfig(frames=3000, buckets=(n,), greedy=budget))
        eng32.warm_up()
        t32 = eng32.run_batch(feats, [prompt] * n)
        hf_dev = hf.to(dev)
        with torch.inference_mode():
            hf_out = hf_dev.generate(
                input_features=feats,
                decoder_input_ids=torch.tensor([prompt] * n, device=dev),
                max_new_tokens=args.tokens,
                do_sample=False,
                num_beams=1,
                suppress_tokens=[SPECIAL.eot],
                begin_suppress_tokens=None,
            )
        hf_tokens = [row[-args.tokens :] for row in hf_out.tolist()]
        corr["ours_fp32_vs_transformers_fp32"] = match_rate(t32, hf_tokens)
        hf.to("cpu")
        del hf_dev
        ours16 = ServingWhisper.from_hf_model(hf).to(dev, dtype).eval()
        eng16 = ServingEngine(ours16, EngineConfig(frames=3000, buckets=(n,), greedy=budget))
        eng16.warm_up()
        t16 = eng16.run_batch(feats, [prompt] * n)
        corr[f"ours_{args.dtype}_vs_ours_fp32"] = match_rate(t16, t32)
        if have_ct2:
            import ctranslate2

            for ct in ("float32", "float16", "int8_float16"):
                m = ctranslate2.models.Whisper(
                    str(ct2_fp16 if ct != "int8_float16" else ct2_int8),
                    device=dev,
                    compute_type=ct
                    if dev == "cuda"
                    else {"float16": "float32", "int8_float16": "int8"}.get(ct, ct),
                )
                out = ct2_generate(m, feats, n)
                corr[f"ct2_{ct}_vs_ours_fp32"] = match_rate(out, t32)
                if ct != "float32":
                    corr[f"ct2_{ct}_vs_ours_{args.dtype}"] = match_rate(out, t16)
                del m
        corr["sample_ours_fp32"] = t32[0]
        corr["sample_transformers_fp32"] = hf_tokens[0]
        RESULTS["correctness"] = corr
        del ours32, eng32, ours16, eng16
        if dev == "cuda":
            torch.cuda.empty_cache()
        log(f"correctness {json.dumps({k: v for k, v in corr.items() if not k.startswith('sample')})}")
        save(args.out)
    del hf

    # ---- CTranslate2 baseline ------------------------------------------------------------------------
    ct2_times: dict[tuple[str, int], dict[int, float]] = {}
    if "ct2" in phases and have_ct2:
        rows = []
        for ct in ("int8_float16", "float16"):
            model = ct2_model(ct)
            for frames in frames_list:
                for b in ct2_batches:
                    if over_budget(f"ct2 {ct} {frames} b{b}"):
                        break
                    feats = features(b, frames)
                    sec, out = timed(lambda m=model, f=feats, b=b: ct2_generate(m, f, b), dev, repeat=2)
                    ntok = statistics.mean(len(x) for x in out)
                    row = {
                        "compute_type": ct,
                        "frames": frames,
                        "batch": b,
                        "batch_s": round(sec, 4),
                        "windows_per_s": round(b / sec, 1),
                        "tokens_per_window": ntok,
                    }
                    if b == 64 or b == ct2_batches[-1]:
                        import ctranslate2

                        sv = ctranslate2.StorageView.from_array(
                            feats if dev == "cuda" else feats.cpu().numpy()
                        )
                        enc_s, _ = timed(lambda m=model, sv=sv: m.encode(sv, to_cpu=False), dev, repeat=2)
                        row["encoder_s"] = round(enc_s, 4)
                    ct2_times.setdefault((ct, frames), {})[b] = sec
                    rows.append(row)
                    log(f"ct2 {row}")
                    RESULTS["ct2"] = rows
                    save(args.out)
            del model
            ct2_models.clear()

    # ---- our engine ----------------------------------------------------------------------------------
    torch_times: dict[int, dict[str, Any]] = {}
    engines: dict[int, ServingEngine] = {}
    if "torch" in phases or "capacity" in phases:
        from transformers import WhisperForConditionalGeneration

        hf = WhisperForConditionalGeneration.from_pretrained(str(ckpt), local_files_only=True)
        base = ServingWhisper.from_hf_model(hf).to(dev, dtype).eval()
        del hf
        rows = []
        for frames in frames_list:
            if over_budget(f"torch {frames}"):
                break
            eng = ServingEngine(base, EngineConfig(frames=frames, buckets=buckets, greedy=budget))
            t = time.perf_counter()
            eng.warm_up()
            RESULTS.setdefault("torch_capture_s", {})[frames] = round(time.perf_counter() - t, 2)
            engines[frames] = eng
            per: dict[str, Any] = {"encoder": {}, "decoder": {}}
            for b in buckets:
                if over_budget(f"torch {frames} b{b}"):
                    break
                feats = features(b, frames)
                enc_s, enc = timed(lambda f=feats, eng=eng: eng.encode(f), dev, repeat=3)
                dec_s, out = timed(
                    lambda e=enc, b=b, eng=eng: eng.decode(e, [prompt] * b, early_stop=False), dev, repeat=3
                )
                per["encoder"][b], per["decoder"][b] = enc_s, dec_s
                row = {
                    "frames": frames,
                    "batch": b,
                    "encoder_s": round(enc_s, 4),
                    "decoder_s": round(dec_s, 4),
                    "batch_s": round(enc_s + dec_s, 4),
                    "windows_per_s": round(b / (enc_s + dec_s), 1),
                    "decoder_step_ms": round(1000 * dec_s / (len(prompt) - 1 + args.tokens), 3),
                    "tokens_per_window": statistics.mean(len(x) for x in out),
                }
                rows.append(row)
                log(f"torch {row}")
                RESULTS["torch"] = rows
                save(args.out)
            torch_times[frames] = per
            # The same decode without CUDA graphs: what launch overhead costs at this size.
            b = 64 if 64 in buckets else buckets[len(buckets) // 2]
            if b in per["encoder"] and not over_budget("no-graph decode"):
                enc = eng.encode(features(b, frames))
                dec_s, _ = timed(
                    lambda e=enc, b=b, eng=eng: eng.decode(e, [prompt] * b, early_stop=False, graphs=False),
                    dev,
                    repeat=2,
                )
                RESULTS.setdefault("torch_no_graphs", []).append(
                    {
                        "frames": frames,
                        "batch": b,
                        "decoder_s": round(dec_s, 4),
                        "with_graphs_s": per["decoder"][b],
                    }
                )
                log(f"no graphs: frames {frames} batch {b} decoder {dec_s:.4f}s vs {per['decoder'][b]:.4f}s")
                save(args.out)
        if args.compile and dev == "cuda" and not over_budget("compiled encoder"):
            b = 64
            feats = features(b, 3000)
            eager_s, ref = timed(lambda: base.encode(feats), dev, repeat=3)
            t = time.perf_counter()
            base.compile_encoder(dynamic=False)
            try:
                with torch.inference_mode():
                    base.encode(feats)
                sync(dev)
                compile_s = time.perf_counter() - t
                comp_s, out = timed(lambda: base.encode(feats), dev, repeat=3)
                err = ((out.float() - ref.float()).norm() / ref.float().norm()).item()
                RESULTS["encoder_compiled"] = {
                    "batch": b,
                    "frames": 3000,
                    "eager_s": round(eager_s, 4),
                    "compiled_s": round(comp_s, 4),
                    "compile_s": round(compile_s, 1),
                    "rel_err_vs_eager": err,
                }
            except Exception as e:
                RESULTS["encoder_compiled"] = {"error": repr(e)}
            base._compiled_encoder = None
            log(f"compiled encoder {RESULTS['encoder_compiled']}")
            save(args.out)

    # ---- capacity ------------------------------------------------------------------------------------
    if "capacity" in phases:
        cap: dict[str, Any] = {"period_s": 5.0, "p95_limit_s": 1.5, "simulated": {}, "realtime": []}
        for (ct, frames), pts in ct2_times.items():
            svc = ServiceTimes(pts)
            n, _ = max_sessions(svc, svc.max_batch)
            cap["simulated"][f"ct2_{ct}_{frames}"] = {
                "max_sessions": n,
                "at_max": simulate(n, svc, svc.max_batch).as_dict() if n else None,
                "points": {b: round(s, 4) for b, s in pts.items()},
            }
        for frames, per in torch_times.items():
            eng = engines[frames]
            enc_pts = ServiceTimes(per["encoder"])
            dec = per["decoder"]
            measured = max(dec)

            def svc_t(n: int, enc_pts: ServiceTimes = enc_pts, dec: dict[int, float] = dec) -> float:
                return enc_pts(n) + dec[min(b for b in dec if b >= n)]

            n, _ = max_sessions(svc_t, measured)
            cap["simulated"][f"torch_{args.dtype}_{frames}"] = {
                "max_sessions": n,
                "at_max": simulate(n, svc_t, measured).as_dict() if n else None,
                "at_1000": simulate(1000, svc_t, measured).as_dict(),
            }
        log(f"simulated {json.dumps({k: v['max_sessions'] for k, v in cap['simulated'].items()})}")
        RESULTS["capacity"] = cap
        save(args.out)

        # Wall-clock check of the real loop at the simulated N (and at 1000 sessions).
        def torch_realtime(frames: int) -> None:
            eng = engines[frames]
            key = f"torch_{args.dtype}_{frames}"
            targets = sorted({cap["simulated"][key]["max_sessions"], 1000} if frames == 3000 else {1000})
            pool = features(eng.max_batch, frames)

            def run_torch(n: int) -> None:
                eng.run_batch(pool[:n], [prompt] * n)

            for n in targets:
                if n <= 0 or over_budget(f"realtime {key} N={n}"):
                    continue
                r = run_realtime(n, run_torch, eng.max_batch, duration_s=args.realtime_s)
                cap["realtime"].append({"engine": key, **r.as_dict()})
                log(f"realtime {key} {r.as_dict()}")
                save(args.out)

        for frames in frames_list:
            if frames in engines:
                torch_realtime(frames)
        if have_ct2 and ("int8_float16", 3000) in ct2_times and not over_budget("realtime ct2"):
            # Give the torch engines' buffers back first: both engines at once need not fit.
            engines.clear()
            del base
            if dev == "cuda":
                torch.cuda.empty_cache()
            model = ct2_model("int8_float16")
            mb = max(ct2_times[("int8_float16", 3000)])
            pool = features(mb, 3000)
            n = cap["simulated"]["ct2_int8_float16_3000"]["max_sessions"]

            def run_ct2(k: int) -> None:
                ct2_generate(model, pool[:k], k)

            if n > 0:
                r = run_realtime(n, run_ct2, mb, duration_s=args.realtime_s)
                cap["realtime"].append({"engine": "ct2_int8_float16_3000", **r.as_dict()})
                log(f"realtime ct2 {r.as_dict()}")
        save(args.out)
    RESULTS["total_s"] = round(time.perf_counter() - T0, 1)
    save(args.out)
    log("done")


if __name__ == "__main__":
    try:
        main()
    except Exception:
        RESULTS["fatal"] = traceback.format_exc()
        out = Path(os.environ.get("OUT", "/tmp/asr_gpu_out"))
        out.mkdir(parents=True, exist_ok=True)
        (out / "asr_gpu_bench.json").write_text(json.dumps(RESULTS, indent=1, default=str))
        raise
