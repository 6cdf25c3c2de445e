"""``assistant bench vision``: what each local image analyser costs per frame, and how well OCR reads.

The measurements live in ``assistant.bench.vision_costs`` (frames
drawn at run time, the analysers loaded as the describer loads them, OCR
character error rates on sentences in four fonts, flat and tilted, read
from the sampler's own JPEG); this command runs them and reports them with
the machine, like every other benchmark. The sampler's cost per camera
frame is part of ``assistant bench frontend``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from assistant.bench.report import Machine, format_table, publish, seed_everything


def run(args: argparse.Namespace) -> int:
    try:
        from assistant.bench.vision_costs import bench_analysers, ocr_accuracy
        from vision.describe import default_analysers
    except ModuleNotFoundError as exc:
        print(f"assistant bench vision: {exc.name} is missing: pip install 'live-assistant[vision]'", file=sys.stderr)
        return 2
    seed_everything(args.seed)
    machine = Machine.now()
    analysers = default_analysers(ocr=args.ocr)
    timings, unavailable = bench_analysers(analysers, repeats=2 if args.quick else 5)
    reader = next(analyser for analyser in analysers if analyser.name == "text")
    tilts = (3.0,) if args.quick else (0.0, 3.0)
    rates = {} if reader.name in unavailable else ocr_accuracy(reader, tilts=tilts)
    machine.finish()
    print("assistant bench vision   (per 1024x576 sampled frame, model loading excluded)\n")
    rows = [[name, timing.p50, timing.p95, timing.calls] for name, timing in timings.items()]
    rows += [[name, None, None, f"unavailable: {reason}"] for name, reason in unavailable.items()]
    print(format_table(["analyser, ms per frame", "p50", "p95", "calls"], rows))
    if rates:
        print(f"\nOCR ({args.ocr}) character error rate on rendered sentences")
        tilt_names = list(next(iter(rates.values())))
        table = [[sentence, *(f"{by_tilt[tilt]:.1%}" for tilt in tilt_names)] for sentence, by_tilt in rates.items()]
        print(format_table(["sentence", *tilt_names], table))
    print(machine.describe())
    report = {
        "benchmark": "vision",
        "seed": args.seed,
        "quick": args.quick,
        "machine": machine.to_json(),
        "ocr": args.ocr,
        "analysers_ms": {name: asdict(timing) for name, timing in timings.items()},
        "unavailable": unavailable,
        "ocr_character_error_rate": rates,
    }
    publish(args, report)
    return 0
