"""Reading an original text aloud with espeak-ng (the Thirukkural's Tamil, for one).

espeak-ng has voices for about a hundred languages, Tamil (``ta``) among
them, where the project's neural voices speak only English. It is GPL, so it
runs as a separate program, never linked into this process. Its ``--stdout``
WAV arrives while it is still speaking (the header carries placeholder
sizes), so audio is streamed: 24 kHz 16-bit mono PCM chunks, the Live
protocol's output format, resampled from espeak-ng's 22.05 kHz as they come.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
from collections.abc import AsyncIterator

from audio.resample import StreamResampler

OUTPUT_RATE = 24_000
READ_BYTES = 4096
ESPEAK_PROGRAM = "espeak-ng"


class ReadAloudError(Exception):
    """The text cannot be spoken: espeak-ng is missing, refuses the voice, or sent no audio."""


async def _read_wav_header(stream: asyncio.StreamReader) -> int:
    """Consume a RIFF/WAVE header up to the data chunk; return the sample rate."""
    riff = await stream.readexactly(12)
    if riff[:4] != b"RIFF" or riff[8:12] != b"WAVE":
        raise ReadAloudError("espeak-ng did not produce WAV audio")
    rate = 0
    while True:
        chunk_id, size = struct.unpack("<4sI", await stream.readexactly(8))
        if chunk_id == b"data":
            break
        body = await stream.readexactly(size + (size & 1))
        if chunk_id == b"fmt ":
            fmt, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if (fmt, channels, bits) != (1, 1, 16):
                raise ReadAloudError(f"espeak-ng sent format {fmt}, {channels} channels, {bits} bits, not PCM16 mono")
    if not rate:
        raise ReadAloudError("espeak-ng's WAV has no format chunk")
    return rate


async def stream_espeak(text: str, voice: str = "ta", *, words_per_minute: int | None = None) -> AsyncIterator[bytes]:
    """Speak ``text`` with espeak-ng's ``voice``, yielding 24 kHz PCM16 mono as it is synthesised.

    Closing the iterator early (a barge-in) stops the program.
    """
    program = shutil.which(ESPEAK_PROGRAM)
    if program is None:
        raise ReadAloudError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    if not text.strip():
        raise ReadAloudError("nothing to read aloud")
    command = [program, "-v", voice, "-b", "1", "--stdin", "--stdout"]
    if words_per_minute:
        command += ["-s", str(words_per_minute)]
    process = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdin and process.stdout and process.stderr
    process.stdin.write(text.encode("utf-8"))
    process.stdin.close()
    try:
        try:
            rate = await _read_wav_header(process.stdout)
        except asyncio.IncompleteReadError:
            await process.wait()
            message = (await process.stderr.read()).decode(errors="replace").strip()
            reason = message or f"exit status {process.returncode}"
            raise ReadAloudError(f"espeak-ng (voice {voice!r}) failed: {reason}") from None
        resampler = StreamResampler(rate, OUTPUT_RATE)
        pending = b""
        while data := await process.stdout.read(READ_BYTES):
            data = pending + data
            whole = len(data) - len(data) % 2  # keep samples whole across reads
            data, pending = data[:whole], data[whole:]
            if out := resampler.process(data):
                yield out
        if tail := resampler.flush():
            yield tail
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def read_aloud(text: str, voice: str = "ta") -> bytes:
    """The whole utterance as one 24 kHz PCM16 buffer (for tests and files; stream it when playing)."""
    return b"".join([chunk async for chunk in stream_espeak(text, voice)])
