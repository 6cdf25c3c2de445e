"""The benchmarks' Gemini stand-in, driven by the real google-genai SDK over TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import numpy as np
import pytest
from google import genai
from google.genai import errors, types
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from assistant.bench.upstream import BAD_KEY_REASON, DEFAULT_KEY, Certificate, EchoMode, EchoUpstream, Stamp
from assistant.bench.upstream import make_certificate as make_upstream_certificate

MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_upstream_certificate(tmp_path_factory.mktemp("upstream"))


def sdk(upstream: EchoUpstream, key: str = DEFAULT_KEY) -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=upstream.base_url,
            api_version="v1beta",
            async_client_args={"ssl": upstream.certificate.client_context()},
        ),
    )


def audio(pcm: bytes) -> types.Blob:
    return types.Blob(data=pcm, mime_type="audio/pcm;rate=16000")


async def test_stream_mode_echoes_each_chunk_at_24_khz_with_its_stamp(certificate: Certificate) -> None:
    async with EchoUpstream(certificate, EchoMode.STREAM) as upstream:
        config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO])
        async with sdk(upstream).aio.live.connect(model=MODEL, config=config) as session:
            tone = (np.sin(np.arange(320) / 5) * 8000).astype("<i2").tobytes()
            stamped = Stamp(4, 11).pack() + tone[Stamp.SIZE :]
            await session.send_realtime_input(audio=audio(stamped))
            await session.send_realtime_input(audio=audio(tone))
            echoes = []
            async for message in session.receive():
                assert message.server_content and message.server_content.model_turn
                part = message.server_content.model_turn.parts[0]  # type: ignore[index]
                assert part.inline_data and part.inline_data.mime_type == "audio/pcm;rate=24000"
                echoes.append(part.inline_data.data)
                if len(echoes) == 2:
                    break
    assert all(echo is not None and len(echo) == 960 for echo in echoes)  # 20 ms at 24 kHz
    stamp = Stamp.read(echoes[0] or b"")
    assert stamp is not None and (stamp.session, stamp.sequence) == (4, 11)
    assert 0 < stamp.received_at <= stamp.sent_at
    assert Stamp.read(echoes[1] or b"") is None  # plain audio comes back plain
    assert upstream.stats.audio_chunks_in == upstream.stats.audio_chunks_out == 2


async def test_turns_mode_answers_after_the_pause_like_a_live_model(certificate: Certificate) -> None:
    milestones: list[tuple[str, float]] = []
    async with EchoUpstream(certificate, EchoMode.TURNS, silence_ms=300, observe=lambda *m: milestones.append(m)) as up:
        config = types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO])
        async with sdk(up).aio.live.connect(model=MODEL, config=config) as session:
            speech = (np.sin(np.arange(320 * 15) / 5) * 8000).astype("<i2").tobytes()  # 0.3 s
            for start in range(0, len(speech), 640):
                await session.send_realtime_input(audio=audio(speech[start : start + 640]))
            assert not milestones  # no answer while the user speaks
            for _ in range(15):  # 0.3 s of silence ends the turn
                await session.send_realtime_input(audio=audio(bytes(640)))
            reply = b""
            async for message in session.receive():
                content = message.server_content
                assert content is not None
                for part in content.model_turn.parts if content.model_turn and content.model_turn.parts else []:
                    reply += part.inline_data.data if part.inline_data and part.inline_data.data else b""
                if content.turn_complete:
                    assert content.generation_complete is None  # its own message, before turnComplete
                    break
            handle = await anext(session.receive())
    assert handle.session_resumption_update and handle.session_resumption_update.resumable
    assert abs(len(reply) - len(speech) * 3 // 2) <= 96  # the utterance, at 24 kHz
    names = [name for name, _ in milestones]
    assert names == ["speech_received", "turn_end", "first_audio"]
    assert milestones[0][1] <= milestones[1][1] <= milestones[2][1]


async def test_a_wrong_key_is_refused_as_gemini_refuses_it(certificate: Certificate) -> None:
    async with EchoUpstream(certificate) as upstream:
        with pytest.raises(errors.APIError) as refused:
            async with sdk(upstream, key="wrong").aio.live.connect(model=MODEL, config={}) as session:
                await anext(session.receive())
        assert refused.value.code == 1007 and BAD_KEY_REASON in str(refused.value)
        assert upstream.stats.refused == 1


async def test_only_the_live_paths_are_served(certificate: Certificate, tmp_path: Path) -> None:
    async with EchoUpstream(certificate) as upstream:
        context = ssl.create_default_context(cafile=str(certificate.cert))
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"wss://127.0.0.1:{upstream.port}/ws/elsewhere", ssl=context):
                pass
        assert refused.value.response.status_code == 404
