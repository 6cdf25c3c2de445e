"""Sound device errors a person can act on.

Real PyAudio streams are exercised against PulseAudio in test_talk_pulse.py;
a missing or busy device cannot be staged there, so these tests hand the
device code a stand-in for PortAudio's handle that reports exactly what
PortAudio reports (its device table, its error codes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from assistant.cli import main
from audio.devices import DeviceBusy, DeviceInfo, NoDevice, Speaker, find_device, list_devices


class PortAudioHandle:
    """PortAudio as PyAudio shows it: a device table, and ``open`` failing with an error code."""

    def __init__(self, devices: list[dict[str, Any]], open_error: OSError | None = None) -> None:
        self.devices = devices
        self.open_error = open_error

    def get_device_count(self) -> int:
        return len(self.devices)

    def get_device_info_by_index(self, index: int) -> dict[str, Any]:
        return {"index": index, "hostApi": 0, **self.devices[index]}

    def get_host_api_info_by_index(self, index: int) -> dict[str, Any]:
        return {"name": "ALSA"}

    def get_default_input_device_info(self) -> dict[str, Any]:
        raise OSError(-9996, "No Default Input Device Available")

    def get_default_output_device_info(self) -> dict[str, Any]:
        return self.get_device_info_by_index(0)

    def is_format_supported(self, rate: int, **kwargs: Any) -> bool:
        return True

    def open(self, **kwargs: Any) -> Any:
        assert self.open_error is not None
        raise self.open_error

    def terminate(self) -> None:
        pass


SPEAKER_ONLY = [
    {
        "name": "HDA Intel PCH: ALC257 Analog",
        "maxInputChannels": 0,
        "maxOutputChannels": 2,
        "defaultSampleRate": 48000.0,
    }
]


def test_no_microphone_says_what_to_do() -> None:
    handle = PortAudioHandle(SPEAKER_ONLY)
    assert list_devices(handle) == [DeviceInfo(0, SPEAKER_ONLY[0]["name"], "ALSA", 0, 2, 48000, False, True)]
    with pytest.raises(NoDevice, match=r"no microphone \(input device\) found; connect one, or .* --input WAV"):
        find_device(handle, None, "input")
    with pytest.raises(NoDevice, match=r"no speaker .* matches 'usb'; see `assistant talk --list-devices`"):
        find_device(handle, "usb", "output")


def test_a_busy_speaker_says_what_to_do() -> None:
    handle = PortAudioHandle(SPEAKER_ONLY, open_error=OSError(-9985, "Device unavailable"))
    with pytest.raises(DeviceBusy, match=r"is busy .* choose another device with --output-device"):
        Speaker(handle, find_device(handle, None, "output"))


def test_the_command_reports_a_missing_microphone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr("client.desktop.media.open_portaudio", lambda: PortAudioHandle(SPEAKER_ONLY))
    assert main(["talk", "--output", str(tmp_path / "reply.wav")]) == 2
    assert "no microphone (input device) found" in capsys.readouterr().err
