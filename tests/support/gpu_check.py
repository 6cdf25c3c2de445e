"""The transformers stack on a CUDA GPU: one prepared run, reported as JSON and as a table.

A GPU machine is lent rarely and briefly, with its own torch and
transformers and no network, so everything it should find out is asked in
one run (``scripts/gpu-check.sh``, ``make gpu-check``) prepared and tested
on CPUs beforehand. On each device (the GPU, then the CPU) it runs:

- the transformers engine tests, ``pytest --device <device>``: Whisper's
  cached decoding against the uncached reference, forced prefixes, word
  alignment, a VITS voice and a LLaVA captioning a frame;
- a streaming transcript (the local backend's loop of growing windows,
  local agreement and trimming) with a random Whisper, and a synthesis with
  a random VITS voice, checking that the models sit on that device;
- a micro-benchmark on random checkpoints shaped like whisper-small.en and
  an MMS-TTS voice: Whisper's encoder pass and greedy decode steps per
  second, and the voice's time to first audio.

The CPU half runs everywhere, so the whole script is tested on machines
without a GPU. Without CUDA the run says so and exits with 2 after the CPU
half, unless ``--cpu-only`` (or ``GPU_CHECK_CPU_ONLY=1``) says that a CPU
is all that is expected; ``--cuda-only`` refuses at once.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

# Only light imports here: the project's stack needs the carried wheels, which main checks for first.
from assistant.bench.report import Machine, format_table, write_json
from tests.support.checkpoints import SIZES, Size, random_voice, random_whisper

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "gpu-check-report"
CPU_ONLY_VARIABLE = "GPU_CHECK_CPU_ONLY"
REPORT_NAME = "gpu-check.json"
TABLE_NAME = "gpu-check.txt"
EXIT_FAILED = 1
EXIT_NO_CUDA = 2
ENGINE_TESTS = (
    "tests/test_local_transformers.py",
    "tests/test_vision_describe.py::test_vlm_answers_about_a_frame_and_leads_the_description",
)
# Left out: it starts the whole offline stack (Silero VAD, CTranslate2 Whisper tiny.en) to see a promised GPU
# refused, which a GPU image lacks and which is about a machine without a GPU anyway.
NEEDS_THE_OFFLINE_STACK = (
    "tests/test_local_transformers.py::test_a_gpu_promised_but_absent_stops_the_server_with_the_remedy",
)
PYTEST_PLUGINS = ("pytest_asyncio.plugin", "pytest_timeout")
ENGINE_TESTS_TIMEOUT_S = 300
# What the engine tests import beyond torch and transformers: a GPU image may lack them (scripts/gpu-wheels.sh).
TEST_IMPORTS = ("websockets", "pydantic", "soxr", "platformdirs", "google.genai", "pytest", "pytest_asyncio", "cv2")
SAMPLE_RATE = 16_000  # the engines' input rate
SPOKEN = "hello there, how are you today?"
STREAM_CHUNK_S = 0.5
STREAM_AUDIO_S = 6.0
# The benchmark's work per size: seconds of audio for Whisper, greedy steps, measured repeats after a warm-up.
BENCH_AUDIO_S: dict[Size, float] = {"tiny": 2.0, "real": 10.0}
BENCH_STEPS: dict[Size, int] = {"tiny": 8, "real": 64}
BENCH_SENTENCE = "the quick brown fox jumps over the lazy dog, and then it runs back home."


@dataclass
class Check:
    """One pass/fail step of the run, on one device."""

    name: str
    device: str
    status: str  # passed, failed or skipped
    seconds: float
    detail: str
    figures: dict[str, Any] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.out or os.environ.get("OUT") or DEFAULT_OUT)
    out.mkdir(parents=True, exist_ok=True)
    cpu_only = args.cpu_only or os.environ.get(CPU_ONLY_VARIABLE, "") not in ("", "0")
    machine = Machine.now()
    environment = describe_environment()
    cuda = environment["cuda"]["available"]
    report: dict[str, Any] = {
        "schema": 1,
        "machine": machine,
        "environment": environment,
        "cuda": {"expected": not cpu_only, "ran": False, "note": ""},
        "checks": [],
        "benchmark": {},
    }
    if not cuda:
        report["cuda"]["note"] = no_cuda_note(environment)
    if args.cuda_only and not cuda:
        return finish(report, machine, out, EXIT_NO_CUDA)
    if environment["missing"]:
        detail = f"not importable: {', '.join(environment['missing'])}; carry the wheels of scripts/gpu-wheels.sh"
        report["checks"].append(Check("carried wheels", "-", "failed", 0.0, detail))
        return finish(report, machine, out, EXIT_FAILED)
    # The GPU first: should a lent machine's time run out, what only it can tell is already written down.
    devices = ["cuda"] if args.cuda_only else ["cpu"] if cpu_only or not cuda else ["cuda", "cpu"]
    checks: list[Check] = report["checks"]
    run = Check("the run itself", ",".join(devices), "passed", 0.0, "")
    with measured(run), tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        checkpoints = Path(scratch)
        tiny_whisper = random_whisper(checkpoints / "whisper-tiny")
        tiny_voice = random_voice(checkpoints / "voice-tiny")
        for device in devices:
            checks.append(engine_tests(device, out))
            checks.append(streaming_transcript(device, tiny_whisper))
            checks.append(synthesis(device, tiny_voice))
            write_json(out / REPORT_NAME, report_json(report))  # so far, in case the run is cut short
        report["benchmark"] = benchmark(devices, args.size, args.repeats, checkpoints, checks)
    if run.status == "failed":  # what the checks do not catch: making the checkpoints, say
        checks.append(run)
    report["cuda"]["ran"] = "cuda" in devices
    return finish(report, machine, out, exit_status(report["checks"], report["cuda"]["ran"], cpu_only))


def exit_status(checks: list[Check], cuda_ran: bool, cpu_only: bool) -> int:
    """1 when a check failed; else 2 when CUDA was expected and did not run; else 0."""
    if any(check.status == "failed" for check in checks):
        return EXIT_FAILED
    return 0 if cuda_ran or cpu_only else EXIT_NO_CUDA


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="gpu-check", description=__doc__.split("\n\n")[0])
    only = parser.add_mutually_exclusive_group()
    expected = f"a CPU is all that is expected (or {CPU_ONLY_VARIABLE}=1)"
    only.add_argument("--cpu-only", action="store_true", help=expected)
    only.add_argument("--cuda-only", action="store_true", help="skip the CPU half; refuse at once without CUDA")
    parser.add_argument("--size", choices=SIZES, default="real", help="benchmark checkpoints' shapes (default real)")
    parser.add_argument("--repeats", type=int, default=3, help="measured repeats per figure, after a warm-up")
    parser.add_argument("--out", help=f"folder for {REPORT_NAME} and {TABLE_NAME} (default $OUT, else {DEFAULT_OUT})")
    return parser.parse_args(argv)


def finish(report: dict[str, Any], machine: Machine, out: Path, status: int) -> int:
    """Write the JSON report and the table, print the table and say what the exit status means."""
    machine.finish()
    report["exit_status"] = status
    write_json(out / REPORT_NAME, report_json(report))
    table = render(report)
    (out / TABLE_NAME).write_text(table + "\n")
    print(table)
    print(f"wrote {out / REPORT_NAME} and {out / TABLE_NAME}")
    return status


def report_json(report: dict[str, Any]) -> dict[str, Any]:
    return {
        **report,
        "machine": report["machine"].to_json(),
        "checks": [asdict(check) for check in report["checks"]],
    }


# -- the environment ---------------------------------------------------------


def describe_environment() -> dict[str, Any]:
    """Versions, the project's pins beside them, the GPU, and what the tests would miss."""
    import torch

    cuda: dict[str, Any] = {"available": bool(torch.cuda.is_available()), "runtime": torch.version.cuda}
    if cuda["available"]:
        properties = torch.cuda.get_device_properties(0)
        cuda |= {
            "device": properties.name,
            "capability": f"{properties.major}.{properties.minor}",
            "memory_gib": round(properties.total_memory / 2**30, 1),
            "count": torch.cuda.device_count(),
        }
    return {
        "versions": {name: installed(name) for name in ("torch", "transformers", "tokenizers", "numpy", "pytest")},
        "pins": project_pins(("torch", "transformers")),
        "cuda": cuda,
        "missing": [module for module in TEST_IMPORTS if not importable(module)],
        "cpu_threads": torch.get_num_threads(),
    }


def installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def project_pins(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The ``transformers`` extra's requirements for ``names``, and whether what is installed meets them."""
    from packaging.requirements import Requirement

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins: list[dict[str, Any]] = []
    for line in extras["transformers"]:
        requirement = Requirement(line)
        if requirement.name in names:
            version = installed(requirement.name)
            satisfied = version is not None and requirement.specifier.contains(version, prereleases=True)
            pins.append({"package": requirement.name, "required": str(requirement.specifier), "installed": version})
            pins[-1]["satisfied"] = satisfied
    return pins


def no_cuda_note(environment: dict[str, Any]) -> str:
    versions = environment["versions"]
    build = f"CUDA {environment['cuda']['runtime']} build" if environment["cuda"]["runtime"] else "CPU-only build"
    return f"no CUDA GPU: torch {versions['torch']} ({build}) sees none; the CUDA half did not run"


# -- checks on one device ----------------------------------------------------


@contextmanager
def measured(check: Check) -> Iterator[None]:
    """Time the body; a failed assertion or an error fails the check and the run goes on to the next."""
    started = time.perf_counter()
    try:
        yield
    except Exception as error:  # the check reports any failure of the stack under test
        check.status = "failed"
        check.detail = f"{type(error).__name__}: {error}".strip()[:2000]
    check.seconds = round(time.perf_counter() - started, 3)


def engine_tests(device: str, out: Path) -> Check:
    """``pytest --device DEVICE`` over the transformers engine tests.

    Left out: the slow ``assistant serve`` test and ``NEEDS_THE_OFFLINE_STACK``, which need the offline
    stack's packaged models (far more than can be carried to a GPU machine).
    """
    name = "engine tests"
    junit = out / f"engine-tests-{device}.xml"
    command = [sys.executable, "-m", "pytest", *ENGINE_TESTS, "--device", device, "-m", "not slow", "-q"]
    command += ["-p", "no:cacheprovider", f"--junitxml={junit}"]
    command += [f"--deselect={test}" for test in NEEDS_THE_OFFLINE_STACK]
    # Only the plugins these tests use: a GPU image's own (pytest-benchmark, -cov, -xdist) were built for its
    # pytest, which the carried one replaces.
    command += [option for plugin in PYTEST_PLUGINS for option in ("-p", plugin)]
    environment = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    started = time.perf_counter()
    try:
        result = subprocess.run(
            command,
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=ENGINE_TESTS_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Check(name, device, "failed", ENGINE_TESTS_TIMEOUT_S, f"pytest ran past {ENGINE_TESTS_TIMEOUT_S} s")
    seconds = round(time.perf_counter() - started, 3)
    counts, failures = junit_summary(junit) if junit.is_file() else ({}, [])
    passed = result.returncode == 0 and counts.get("passed", 0) > 0
    output = (result.stdout + result.stderr).strip().splitlines()
    summary = ", ".join(f"{number} {state}" for state, number in counts.items() if number) or "no tests ran"
    detail = "; ".join([summary, *failures]) if passed or failures else "\n".join([summary, *output[-20:]])
    return Check(name, device, "passed" if passed else "failed", seconds, detail, {"tests": counts})


def junit_summary(path: Path) -> tuple[dict[str, int], list[str]]:
    """Counts by outcome, and each failed test's name with the first line of its failure."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            counts["failed"] += 1
            message = (problem.get("message") or problem.text or "").strip().splitlines()
            failures.append(f"{case.get('name')}: {message[0][:300] if message else 'failed'}")
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return counts, failures


def model_device(model: Any) -> str:
    return str(next(model.parameters()).device.type)


def streaming_transcript(device: str, checkpoint: Path) -> Check:
    """The local backend's streaming loop over a random Whisper, half a second of audio at a time."""
    from assistant.backends.local.asr_transformers import TransformersWhisperRecognizer
    from tests.support.streaming import stream_turn

    check = Check("streaming transcript", device, "passed", 0.0, "")
    with measured(check):
        recognizer = TransformersWhisperRecognizer(str(checkpoint), device=device)
        assert model_device(recognizer._model) == device, f"the model is on {model_device(recognizer._model)}"
        turn = stream_turn(recognizer, noise(STREAM_AUDIO_S), int(STREAM_CHUNK_S * SAMPLE_RATE))
        text = "".join(turn.fragments).strip()
        assert text, "nothing was transcribed"
        assert text == turn.transcript.text, "the committed fragments differ from the final transcript"
        check.detail = f"{len(turn.call_seconds)} calls, {len(text.split())} words committed in order"
        check.figures = {
            "dtype": str(recognizer._dtype).removeprefix("torch."),
            "calls": len(turn.call_seconds),
            "words": len(text.split()),
            "call_s_median": round(statistics.median(turn.call_seconds), 4),
            "call_s_max": round(max(turn.call_seconds), 4),
        }
    return check


def synthesis(device: str, checkpoint: Path) -> Check:
    """A sentence through a random VITS voice on ``device``."""
    from assistant.backends.local.tts import TransformersVoice

    check = Check("synthesis", device, "passed", 0.0, "")
    with measured(check):
        voice = TransformersVoice(str(checkpoint), device=device)
        placed = model_device(voice._pipeline.model)
        assert placed == device, f"the voice is on {placed}"
        started = time.perf_counter()
        samples = voice.synthesize(SPOKEN)
        seconds = time.perf_counter() - started
        assert samples.dtype == np.int16 and len(samples) > 0, "no audio"
        audio_s = len(samples) / voice.sample_rate
        check.detail = f"{audio_s:.2f} s of audio in {seconds:.3f} s"
        check.figures = {"audio_s": round(audio_s, 3), "synthesis_s": round(seconds, 4)}
    return check


def noise(seconds: float, seed: int = 0) -> np.ndarray:
    """Quiet noise: a random Whisper transcribes anything, and real speech would not make it wiser."""
    return (np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE)) * 0.1).astype(np.float32)


# -- the micro-benchmark -----------------------------------------------------


def benchmark(devices: list[str], size: Size, repeats: int, scratch: Path, checks: list[Check]) -> dict[str, Any]:
    """Whisper's encoder and decode steps, and a voice's first audio, on each device, same checkpoints.

    A device where a model fails gives an entry with the error and a failed check; the others still run.
    """
    whisper = random_whisper(scratch / f"whisper-{size}", size, endless=True)
    voice = random_voice(scratch / f"voice-{size}", size)

    def attempt(what: str, device: str, measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        check = Check(f"benchmark: {what}", device, "passed", 0.0, "")
        result: dict[str, Any] = {}
        with measured(check):
            result = measure()
        if check.status == "passed":
            return result
        checks.append(check)
        return {"device": device, "error": check.detail}

    return {
        "size": size,
        "repeats": repeats,
        "whisper": {
            "checkpoint": "whisper-small.en shapes" if size == "real" else "the tests' two-layer Whisper",
            "parameters": parameters(whisper),
            "audio_s": BENCH_AUDIO_S[size],
            "results": [
                attempt("Whisper", device, partial(bench_whisper, whisper, device, size, repeats))
                for device in devices
            ],
        },
        "voice": {
            "checkpoint": "MMS-TTS (VITS) shapes" if size == "real" else "the tests' small VITS",
            "parameters": parameters(voice),
            "sentence": BENCH_SENTENCE,
            "results": [
                attempt("voice", device, partial(bench_voice, voice, device, repeats))
                for device in devices
            ],
        },
    }


def parameters(checkpoint: Path) -> int:
    """Parameters in a saved checkpoint, read from its safetensors header (no weights loaded)."""
    total = 0
    for file in checkpoint.glob("*.safetensors"):
        with file.open("rb") as handle:
            header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
        total += sum(math.prod(entry["shape"]) for name, entry in header.items() if name != "__metadata__")
    return total


def synchronised(device: str) -> Callable[[], float]:
    """A clock that first waits for the device's queued work (CUDA kernels run asynchronously)."""
    import torch

    def now() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    return now


def bench_whisper(checkpoint: Path, device: str, size: Size, repeats: int) -> dict[str, Any]:
    """The engine's own encoder pass and greedy decode (cache on), timed apart.

    The checkpoint never ends a text (end-of-text is suppressed), so every
    decode takes the same number of steps: the prompt pass plus one per token.
    """
    from assistant.backends.local.asr_transformers import TransformersWhisperRecognizer

    threads = os.cpu_count() or 1
    started = time.perf_counter()
    recognizer = TransformersWhisperRecognizer(str(checkpoint), device=device, threads=threads)
    load_s = time.perf_counter() - started
    now = synchronised(device)
    audio = noise(BENCH_AUDIO_S[size])
    prompt, start = recognizer._prompt("", "")
    limit = len(prompt) + BENCH_STEPS[size]
    encode_s, decode_s, steps = [], [], 0
    with recognizer._torch.inference_mode():
        for repeat in range(repeats + 1):  # the first is a warm-up (kernel selection, allocator)
            before = now()
            encoded = recognizer._encode(audio)
            middle = now()
            tokens, _, _ = recognizer._greedy(encoded, prompt, start, limit, True)
            after = now()
            if repeat:
                encode_s.append(middle - before)
                decode_s.append(after - middle)
                steps = len(tokens)
    assert steps == BENCH_STEPS[size], f"decoded {steps} tokens, expected {BENCH_STEPS[size]}"
    decode = statistics.median(decode_s)
    return {
        "device": device,
        "dtype": str(recognizer._dtype).removeprefix("torch."),
        "threads": threads if device == "cpu" else None,
        "load_s": round(load_s, 3),
        "encode_s": round(statistics.median(encode_s), 4),
        "decode_steps": steps,
        "decode_s": round(decode, 4),
        "decode_steps_per_s": round(steps / decode, 2),
    }


def bench_voice(checkpoint: Path, device: str, repeats: int) -> dict[str, Any]:
    """Time to the first audio of a sentence: VITS makes the whole sentence in one pass, so all of it."""
    from assistant.backends.local.tts import TransformersVoice

    threads = os.cpu_count() or 1
    started = time.perf_counter()
    voice = TransformersVoice(str(checkpoint), device=device, threads=threads)  # warms up on "."
    load_s = time.perf_counter() - started
    first_audio_s, audio_s = [], []
    for repeat in range(repeats + 1):
        before = time.perf_counter()
        samples = voice.synthesize(BENCH_SENTENCE)
        if repeat:
            first_audio_s.append(time.perf_counter() - before)
            audio_s.append(len(samples) / voice.sample_rate)
    first = statistics.median(first_audio_s)
    spoken = statistics.median(audio_s)
    return {
        "device": device,
        "threads": threads if device == "cpu" else None,
        "load_s": round(load_s, 3),
        "first_audio_s": round(first, 4),
        "audio_s": round(spoken, 3),
        "real_time_factor": round(first / spoken, 4),
    }


# -- the table ---------------------------------------------------------------


def render(report: dict[str, Any]) -> str:
    environment = report["environment"]
    versions = environment["versions"]
    cuda = environment["cuda"]
    gpu = f"{cuda['device']} (CUDA {cuda['runtime']}, {cuda['memory_gib']} GiB)" if cuda["available"] else "none"
    lines = [f"GPU check: torch {versions['torch']}, transformers {versions['transformers']}; GPU: {gpu}"]
    for pin in environment["pins"]:
        verdict = "meets" if pin["satisfied"] else "does NOT meet"
        lines.append(f"  {pin['package']} {pin['installed']} {verdict} the project's pin {pin['required']}")
    if environment["missing"]:
        lines.append(f"  not importable (carry their wheels): {', '.join(environment['missing'])}")
    if report["checks"]:
        rows = [[check.name, check.device, check.status, check.seconds, check.detail] for check in report["checks"]]
        lines += ["", format_table(["check", "device", "status", "s", "detail"], rows)]
    bench = report["benchmark"]
    if bench:
        whisper, voice = bench["whisper"], bench["voice"]
        lines += [
            "",
            f"Whisper, {whisper['checkpoint']} ({whisper['parameters'] / 1e6:.1f} M parameters), "
            f"{whisper['audio_s']:.0f} s of audio, median of {bench['repeats']}:",
            format_table(
                ["device", "dtype", "load s", "encode s", "steps", "decode s", "steps/s"],
                [[r.get(key) for key in WHISPER_COLUMNS] for r in whisper["results"]],
            ),
            "",
            f"Voice, {voice['checkpoint']} ({voice['parameters'] / 1e6:.1f} M parameters), one sentence:",
            format_table(
                ["device", "load s", "first audio s", "audio s", "real-time factor"],
                [[r.get(key) for key in VOICE_COLUMNS] for r in voice["results"]],
            ),
        ]
    if report["cuda"]["note"]:
        expected = "CPU-only was expected" if not report["cuda"]["expected"] else "CUDA was expected"
        lines += ["", f"{report['cuda']['note']} ({expected})."]
    lines.append(f"exit status {report['exit_status']}: {EXIT_MEANINGS[report['exit_status']]}")
    return "\n".join(lines)


WHISPER_COLUMNS = ("device", "dtype", "load_s", "encode_s", "decode_steps", "decode_s", "decode_steps_per_s")
VOICE_COLUMNS = ("device", "load_s", "first_audio_s", "audio_s", "real_time_factor")
EXIT_MEANINGS = {
    0: "every check passed",
    EXIT_FAILED: "a check failed (see the table)",
    EXIT_NO_CUDA: "no CUDA GPU, so the CUDA half is unverified",
}


if __name__ == "__main__":
    sys.exit(main())
