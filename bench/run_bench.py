#!/usr/bin/env python3
"""End-to-end benchmarks of mca-convert against `cp` of the same bytes (issues 2, 3 and 4).

    python3 bench/run_bench.py [--binary build/mca-convert] [--workdir /tmp/mcaconv-bench]
                               [--repeats 3] [--only rewrite,dense,moe] [--json out.json] [--keep]

Scenarios (synthetic checkpoints, written with numpy; see synth.py):
  rewrite  issue 2: `mca-convert rewrite` of a 2.08 GB f32 safetensors file (40 tensors of 52 MB),
           plain and with --bf16, vs `cp` of the file.
  dense    issue 3: a 2.03 GB f32 Llama (hidden 2048, 8 layers, 3 shards) HF -> MCA with TP 2 x
           PP 2 and back, plain and with --bf16, vs `cp -r` of the input folder; then peak memory
           of both directions for a 0.90 GB (2 layers) and a 3.92 GB (18 layers) model.
  moe      issue 4: a 2.33 GB f32 Qwen3-MoE (64 experts, 5 layers, 1008 tensors) HF -> MCA with
           EP 4 and back, vs `cp -r`.

Every timed case runs `repeats` times, interleaved with the others, after one warm-up read of the
input; the page cache is never dropped, but `sync` runs (untimed) before each case so that one
case's dirty pages are not written back on the next one's time, and each output is deleted
right after its run so that outputs never crowd the inputs out of the page cache. mca-convert fsyncs its outputs
and `cp` does not, so each scenario also times "cp+sync" (`cp` then `sync -f` on the output's
file system). The table reports the median wall time, its ratio to the cp baselines, and peak
memory (measure.py). Everything written under the work folder is removed at the end unless
--keep is given.
"""

import argparse
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import measure  # noqa: E402
import synth  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]
GB = 1e9


class Case:
    """One timed command. `make_command(dst)` builds it; `dst` is removed before every run."""

    def __init__(self, name, make_command, dst, baseline=False):
        self.name = name
        self.make_command = make_command
        self.dst = pathlib.Path(dst)
        self.baseline = baseline
        self.results = []
        self.error = None  # set on the first failure; the case is not run again
        self.out_bytes = 0  # size of what the command wrote

    def run_once(self):
        if self.error:
            return
        measure.sync()
        try:
            self.results.append(measure.run(self.make_command(self.dst)))
            self.out_bytes = folder_bytes(self.dst)
        except RuntimeError as e:
            self.error = str(e).strip().splitlines()[-1]
        # Outputs left in place would fill the page cache until the inputs were evicted and the
        # next cases read them from disk.
        remove(self.dst)

    def median(self):
        return statistics.median(r.wall_s for r in self.results)


def remove(path):
    path = pathlib.Path(path)
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def warm_read(path):
    """Flushes the freshly written input, then reads every file of it once, so the timed runs
    start from a warm page cache and with no writeback of the input pending."""
    measure.sync()
    path = pathlib.Path(path)
    for file in [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()):
        with open(file, "rb") as f:
            while f.read(64 << 20):
                pass


def folder_bytes(path):
    path = pathlib.Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cp_cases(src, dst_root, label):
    recursive = ["-r"] if pathlib.Path(src).is_dir() else []
    return [
        Case(f"cp {label}", lambda d: ["cp", *recursive, str(src), str(d)], dst_root / "cp",
             baseline=True),
        Case(f"cp+sync {label}",
             lambda d: ["sh", "-c", f'cp {" ".join(recursive)} "$0" "$1" && sync -f "$1"',
                        str(src), str(d)],
             dst_root / "cp-sync", baseline=True),
    ]


def run_cases(cases, repeats):
    for rep in range(repeats):
        for case in cases:
            case.run_once()
            if case.error:
                print(f"    [{rep + 1}/{repeats}] {case.name}: FAILED: {case.error}", flush=True)
                continue
            r = case.results[-1]
            print(f"    [{rep + 1}/{repeats}] {case.name}: {r.wall_s:.2f} s, "
                  f"RssAnon {r.peak_anon_kb / 1024:.1f} MiB", flush=True)
    for case in cases:
        remove(case.dst)


def report(title, input_bytes, groups, rows_out):
    """Prints one table; `groups` is [(cases, cp_case, cp_sync_case)]."""
    print(f"\n{title} (input {input_bytes / GB:.2f} GB)")
    header = (f"  {'case':<26} {'median s':>8} {'out GB':>7} {'/cp':>5} {'/cp+sync':>8} "
              f"{'per byte':>8} {'RssAnon MiB':>11} {'VmHWM MiB':>9}")
    print(header)
    for cases, cp, cp_sync in groups:
        print(f"  {'  baseline ' + cp.name.split(' ', 1)[1]:<26} cp {cp.median():.2f} s, "
              f"cp+sync {cp_sync.median():.2f} s, {cp.out_bytes / GB:.2f} GB")
        for case in cases:
            if case.error:
                print(f"  {case.name:<26} FAILED: {case.error}")
                rows_out.append({"scenario": title, "case": case.name, "error": case.error})
                continue
            median = case.median()
            anon = max(r.peak_anon_kb for r in case.results) / 1024
            hwm = max(r.hwm_kb for r in case.results) / 1024
            ratio = median / cp.median()
            ratio_sync = median / cp_sync.median()
            # Against cp+sync's time per byte written: EP replicates the dense weights, so an
            # MCA folder can hold more bytes than the HF folder it came from.
            per_byte = (median / case.out_bytes) / (cp_sync.median() / cp_sync.out_bytes)
            print(f"  {case.name:<26} {median:8.2f} {case.out_bytes / GB:7.2f} {ratio:5.2f} "
                  f"{ratio_sync:8.2f} {per_byte:8.2f} {anon:11.1f} {hwm:9.1f}")
            rows_out.append({
                "scenario": title, "case": case.name, "input_bytes": input_bytes,
                "wall_s": [round(r.wall_s, 3) for r in case.results], "median_s": round(median, 3),
                "output_bytes": case.out_bytes, "ratio_cp": round(ratio, 3),
                "ratio_cp_sync": round(ratio_sync, 3), "ratio_cp_sync_per_byte": round(per_byte, 3),
                "cp_median_s": round(cp.median(), 3), "cp_sync_median_s": round(cp_sync.median(), 3),
                "peak_rss_anon_mib": round(anon, 1), "vmhwm_mib": round(hwm, 1)})


def convert_command(binary, src, extra):
    return lambda d: [str(binary), "--checkpoint_path", str(src), "--output_path", str(d),
                      "--quiet", *extra]


def bench_rewrite(args, work, pool, rows):
    folder = work / "issue2"
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / "weights.safetensors"
    print("issue 2: writing a 40 x 52 MB f32 safetensors file", flush=True)
    synth.write_safetensors(src, [(f"weights.{i}", (13000, 1000)) for i in range(40)], "F32", pool)
    warm_read(src)
    cp, cp_sync = cp_cases(src, folder, "file")
    ours = [
        Case("rewrite", lambda d: [str(args.binary), "rewrite", str(src), str(d)],
             folder / "out.safetensors"),
        Case("rewrite --bf16", lambda d: [str(args.binary), "rewrite", str(src), str(d), "--bf16"],
             folder / "out-bf16.safetensors"),
    ]
    run_cases([cp, cp_sync, *ours], args.repeats)
    report("issue 2: rewrite safetensors", folder_bytes(src), [(ours, cp, cp_sync)], rows)
    remove(folder)


def bench_dense(args, work, pool, rows):
    folder = work / "issue3"
    hf = folder / "hf-2GB"
    print("issue 3: writing an 8-layer f32 Llama (hidden 2048)", flush=True)
    synth.write_hf_model(hf, synth.llama_config(8), synth.llama_tensors(synth.llama_config(8)),
                         "F32", pool)
    parallel = ["--tensor_model_parallel_size", "2", "--pipeline_model_parallel_size", "2"]
    mca = folder / "mca-2GB"
    measure.run(convert_command(args.binary, hf, parallel)(mca))  # the MCA input; also a warm-up
    warm_read(hf)
    warm_read(mca)
    cp_hf, cp_sync_hf = cp_cases(hf, folder, "HF folder")
    cp_mca, cp_sync_mca = cp_cases(mca, folder, "MCA folder")
    to_mca = [
        Case("HF->MCA TP2 PP2", convert_command(args.binary, hf, parallel), folder / "o1"),
        Case("HF->MCA TP2 PP2 --bf16", convert_command(args.binary, hf, parallel + ["--bf16"]),
             folder / "o2"),
    ]
    to_hf = [
        Case("MCA->HF", convert_command(args.binary, mca, []), folder / "o3"),
        Case("MCA->HF --bf16", convert_command(args.binary, mca, ["--bf16"]), folder / "o4"),
    ]
    run_cases([cp_hf, cp_sync_hf, *to_mca, cp_mca, cp_sync_mca, *to_hf], args.repeats)
    report("issue 3: dense Llama", folder_bytes(hf),
           [(to_mca, cp_hf, cp_sync_hf), (to_hf, cp_mca, cp_sync_mca)], rows)
    remove(mca)
    remove(hf)
    bench_dense_memory(args, folder, pool, parallel, rows)
    remove(folder)


def bench_dense_memory(args, folder, pool, parallel, rows):
    """Peak private memory of both directions for a ~1 GB and a ~4 GB model (one run each)."""
    print("\nissue 3: peak memory against model size (one run each)")
    print(f"  {'model':<22} {'direction':<16} {'wall s':>7} {'RssAnon MiB':>12} {'VmHWM MiB':>10}")
    for layers in (2, 18):
        config = synth.llama_config(layers)
        hf = folder / f"hf-{layers}"
        mca = folder / f"mca-{layers}"
        back = folder / f"back-{layers}"
        size = synth.write_hf_model(hf, config, synth.llama_tensors(config), "F32", pool)
        label = f"{size / GB:.2f} GB ({layers} layers)"
        for direction, src, dst, extra in (("HF->MCA TP2 PP2", hf, mca, parallel),
                                           ("MCA->HF", mca, back, [])):
            measure.sync()
            r = measure.run(convert_command(args.binary, src, extra)(dst))
            print(f"  {label:<22} {direction:<16} {r.wall_s:7.2f} {r.peak_anon_kb / 1024:12.1f} "
                  f"{r.hwm_kb / 1024:10.1f}", flush=True)
            rows.append({"scenario": "issue 3: memory vs size", "case": direction,
                         "input_bytes": size, "wall_s": [round(r.wall_s, 3)],
                         "peak_rss_anon_mib": round(r.peak_anon_kb / 1024, 1),
                         "vmhwm_mib": round(r.hwm_kb / 1024, 1)})
        for path in (hf, mca, back):
            remove(path)


def bench_moe(args, work, pool, rows):
    folder = work / "issue4"
    hf = folder / "hf-moe"
    config = synth.qwen3_moe_config(5)
    print("issue 4: writing a 5-layer f32 Qwen3-MoE with 64 experts", flush=True)
    synth.write_hf_model(hf, config, synth.qwen3_moe_tensors(config), "F32", pool)
    parallel = ["--expert_model_parallel_size", "4"]
    mca = folder / "mca-moe"
    measure.run(convert_command(args.binary, hf, parallel)(mca))
    warm_read(hf)
    warm_read(mca)
    cp_hf, cp_sync_hf = cp_cases(hf, folder, "HF folder")
    cp_mca, cp_sync_mca = cp_cases(mca, folder, "MCA folder")
    to_mca = [Case("HF->MCA EP4", convert_command(args.binary, hf, parallel), folder / "o1")]
    to_hf = [Case("MCA->HF (from EP4)", convert_command(args.binary, mca, []), folder / "o2")]
    run_cases([cp_hf, cp_sync_hf, *to_mca, cp_mca, cp_sync_mca, *to_hf], args.repeats)
    report("issue 4: Qwen3-MoE 64 experts", folder_bytes(hf),
           [(to_mca, cp_hf, cp_sync_hf), (to_hf, cp_mca, cp_sync_mca)], rows)
    remove(folder)


SCENARIOS = {"rewrite": bench_rewrite, "dense": bench_dense, "moe": bench_moe}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", type=pathlib.Path, default=REPO / "build" / "mca-convert")
    parser.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path("/tmp/mcaconv-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", default="rewrite,dense,moe",
                        help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--json", type=pathlib.Path, help="also write every measurement here")
    parser.add_argument("--keep", action="store_true", help="leave the work folder in place")
    args = parser.parse_args()
    if not args.binary.is_file():
        sys.exit(f"{args.binary} not found: build mca-convert first (see bench/README.md)")
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")

    work = args.workdir / f"run-{int(time.time())}"
    work.mkdir(parents=True)
    started = time.perf_counter()
    rows = []
    try:
        pool = synth.Pool()
        for name in chosen:
            SCENARIOS[name](args, work, pool, rows)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s; "
          f"binary {args.binary}; peak memory figures are per process (measure.py)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
