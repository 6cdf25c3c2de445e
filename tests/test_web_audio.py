"""The browser client's audio code, run in real headless Chromium.

The resampler and the playback worklet are the page's own ES modules,
imported by the page from the server; a recording worklet tapped onto the
playback node captures exactly what reaches the audio graph.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio

from assistant.cli.serve import default_static_dir
from assistant.server import LiveServer, ServerConfig
from assistant.session import MemoryResumptionStore
from tests.support.browser import Browsing, chromium
from tests.support.scripted import ScriptedBackend, idle

RESAMPLE = """
async ({ inRate, outRate, frequency, block, seconds }) => {
  const { StreamResampler } = await import("/audio/resampler.js");
  const resampler = new StreamResampler(inRate, outRate);
  const input = new Float32Array(Math.round(inRate * seconds));
  for (let i = 0; i < input.length; i++) input[i] = 0.5 * Math.sin((2 * Math.PI * frequency * i) / inRate);
  const out = [];
  const buffer = new Float32Array(resampler.maxOutput(block));
  for (let i = 0; i < input.length; i += block) {
    const count = resampler.process(input.subarray(i, i + block), buffer);
    for (let j = 0; j < count; j++) out.push(buffer[j]);
  }
  return out;
}
"""

# A Player on a fresh context, with a recorder worklet on its output.
PLAYER = """
async (options) => {
  const { Player } = await import("/audio/playback.js");
  const context = new AudioContext();
  await context.resume();
  const player = new Player(context, options);
  await player.start();
  const source = `registerProcessor("recorder", class extends AudioWorkletProcessor {
    process(inputs) { if (inputs[0][0]) this.port.postMessage(inputs[0][0].slice()); return true; }
  });`;
  await context.audioWorklet.addModule(URL.createObjectURL(new Blob([source], { type: "text/javascript" })));
  const recorder = new AudioWorkletNode(context, "recorder", { numberOfOutputs: 0 });
  const recorded = [];
  recorder.port.onmessage = (event) => recorded.push(event.data);
  player.node.connect(recorder);
  const tone = (seconds) => {
    const pcm = new Int16Array(Math.round(24000 * seconds));
    for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round(9830 * Math.sin((2 * Math.PI * 440 * i) / 24000));
    return pcm;
  };
  const until = async (predicate, seconds = 10) => {
    const deadline = performance.now() + seconds * 1000;
    while (!predicate(player.stats)) {
      if (performance.now() > deadline) throw new Error(`timed out at ${predicate}: ${JSON.stringify(player.stats)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const samples = () => { const all = []; for (const block of recorded.splice(0)) all.push(...block); return all; };
  window.audioTest = { context, player, tone, until, samples };
  return context.sampleRate;
}
"""


# One server and one browser for the whole module: these tests only import modules into the page.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def browsing() -> AsyncIterator[Browsing]:
    config = ServerConfig(port=0, static_dir=default_static_dir())
    server = LiveServer(config, ScriptedBackend(idle), store=MemoryResumptionStore())
    await server.start()
    try:
        async with chromium(f"http://127.0.0.1:{server.port}/") as page:
            yield page
    finally:
        await server.stop()


def fitted_sine(signal: np.ndarray, frequency: float, rate: float) -> tuple[float, float]:
    """Amplitude of the best-fitting sine at ``frequency``, and the RMS of what it leaves."""
    t = np.arange(len(signal)) / rate
    basis = np.stack([np.sin(2 * np.pi * frequency * t), np.cos(2 * np.pi * frequency * t)], axis=1)
    coefficients, *_ = np.linalg.lstsq(basis, signal, rcond=None)
    residual = signal - basis @ coefficients
    return float(np.hypot(*coefficients)), float(np.sqrt(np.mean(residual**2)))


async def resample(browsing: Browsing, **arguments: float) -> np.ndarray:
    return np.array(await browsing.page.evaluate(RESAMPLE, arguments))


@pytest.mark.parametrize(
    ("in_rate", "out_rate"), [(44_100, 16_000), (48_000, 16_000), (24_000, 44_100), (24_000, 48_000)]
)
async def test_resampler_keeps_speech_and_rejects_aliases(browsing: Browsing, in_rate: int, out_rate: int) -> None:
    steady = slice(200, -200)  # away from the start-up and the held-back tail
    out = await resample(browsing, inRate=in_rate, outRate=out_rate, frequency=1000, block=128, seconds=0.5)
    assert abs(len(out) - 0.5 * out_rate) <= 40  # all but the held-back half kernel
    amplitude, residual = fitted_sine(out[steady], 1000, out_rate)
    assert abs(20 * np.log10(amplitude / 0.5)) < 0.1  # passband flat within 0.1 dB
    assert residual < 1e-3 * amplitude  # nothing else added (-60 dB)
    if in_rate > out_rate:
        # A tone above the output's Nyquist frequency would fold into the speech band; it must not.
        alias = await resample(browsing, inRate=in_rate, outRate=out_rate, frequency=10_000, block=128, seconds=0.5)
        assert 20 * np.log10(np.sqrt(np.mean(alias[steady] ** 2)) / (0.5 / np.sqrt(2))) < -60


async def test_resampler_output_does_not_depend_on_block_sizes(browsing: Browsing) -> None:
    whole = await resample(browsing, inRate=44_100, outRate=16_000, frequency=440, block=44_100, seconds=1)
    blocks = await resample(browsing, inRate=44_100, outRate=16_000, frequency=440, block=37, seconds=1)
    assert len(whole) == len(blocks)
    assert np.max(np.abs(whole - blocks)) < 1e-6


async def test_playback_is_gapless_across_chunks_and_ring_growth(browsing: Browsing) -> None:
    page = browsing.page
    rate = await page.evaluate(PLAYER, {"prebufferMs": 80, "capacitySeconds": 0.25})
    # 1.5 s of one continuous tone in uneven chunks, more than the ring holds at first.
    stats = await page.evaluate(
        """async () => {
          const { player, tone, until, context } = window.audioTest;
          const whole = tone(1.5);
          let at = 0;
          for (const size of [480, 2400, 77, 4800, 960, 12000]) {
            player.enqueue(whole.subarray(at, at + size), 24000);
            at += size;
          }
          player.enqueue(whole.subarray(at), 24000);
          player.drain();
          const expected = Math.round(1.5 * context.sampleRate) - 40;
          await until((s) => s.received >= expected && s.played === s.received && !s.playing);
          return player.stats;
        }"""
    )
    recorded = np.array(await page.evaluate("window.audioTest.samples()"))
    voiced = np.flatnonzero(np.abs(recorded) > 1e-4)
    played = recorded[voiced[0] : voiced[-1] + 1]
    assert stats["underruns"] == 0 and stats["flushed"] == 0
    assert abs(stats["played"] - 1.5 * rate) <= 2
    assert abs(len(played) - 1.5 * rate) <= 40  # the tone's own zero crossings at the edges
    amplitude, residual = fitted_sine(played[100:-100], 440, rate)
    assert abs(amplitude - 0.3) < 0.003
    assert residual < 0.003  # a single dropped or repeated block would leave a large residual


async def test_playback_flush_silences_at_once_and_underruns_are_counted(browsing: Browsing) -> None:
    page = browsing.page
    rate = await page.evaluate(PLAYER, {"prebufferMs": 80})
    stats = await page.evaluate(
        """async () => {
          const { player, tone, until, samples, context } = window.audioTest;
          player.enqueue(tone(3), 24000);
          await until((s) => s.played > context.sampleRate * 0.2);
          samples();
          player.flush();
          await until((s) => s.flushes === 1 && !s.playing);
          const afterFlush = player.stats;
          await new Promise((r) => setTimeout(r, 100));
          const tail = samples();
          // A short reply without "drain" runs dry: an underrun, then it plays again when more comes.
          player.enqueue(tone(0.2), 24000);
          await until((s) => s.underruns === 1);
          const dry = player.stats;
          player.enqueue(tone(0.2), 24000);
          player.drain();
          await until((s) => s.received > dry.received && s.played + s.flushed === s.received && !s.playing);
          return { afterFlush, final: player.stats, silentTail: tail.slice(-Math.round(context.sampleRate * 0.05)) };
        }"""
    )
    after = stats["afterFlush"]
    assert after["flushed"] > 2 * rate  # most of the 3 s was dropped, not played
    assert after["played"] + after["flushed"] == after["received"]
    assert max(abs(x) for x in stats["silentTail"]) == 0
    final = stats["final"]
    assert final["underruns"] == 1
    assert final["played"] - after["played"] == pytest.approx(0.4 * rate, abs=4)
