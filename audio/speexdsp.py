"""A small ctypes binding to the echo canceller and preprocessor of libspeexdsp.

Debian and Ubuntu ship the library as ``libspeexdsp1`` (macOS: ``brew install
speexdsp``); binding it with ctypes needs no compiler and no extra wheel. Only
the calls the desktop client uses are bound: the MDF echo canceller and the
preprocessor, whose residual echo suppressor reads the canceller's state.

Both work on fixed frames of 16-bit mono samples; the caller frames the audio.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import numpy as np

from assistant.errors import AssistantError

# From speex/speex_echo.h and speex/speex_preprocess.h.
_ECHO_SET_SAMPLING_RATE = 24
_PREPROCESS_SET_DENOISE = 0
_PREPROCESS_SET_NOISE_SUPPRESS = 18
_PREPROCESS_SET_ECHO_SUPPRESS = 20
_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE = 22
_PREPROCESS_SET_ECHO_STATE = 24

LIBRARY_CANDIDATES = ("libspeexdsp.so.1", "libspeexdsp.1.dylib", "libspeexdsp.dylib")
INSTALL_HINT = "install it with: sudo apt-get install libspeexdsp1 (Debian/Ubuntu) or brew install speexdsp (macOS)"

_Samples = ctypes.POINTER(ctypes.c_int16)


class SpeexUnavailable(AssistantError, RuntimeError):
    """libspeexdsp is not installed; the message says how to install it."""


@cache
def load_library() -> ctypes.CDLL:
    """Find and load libspeexdsp once, declaring the signatures used here."""
    names = [*LIBRARY_CANDIDATES]
    found = ctypes.util.find_library("speexdsp")
    if found:
        names.insert(0, found)
    errors = []
    for name in names:
        try:
            library = ctypes.CDLL(name)
            break
        except OSError as exc:
            errors.append(str(exc))
    else:
        raise SpeexUnavailable(f"libspeexdsp is not installed ({errors[0]}); {INSTALL_HINT}")

    library.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    library.speex_echo_state_init.restype = ctypes.c_void_p
    library.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
    library.speex_echo_cancellation.argtypes = [ctypes.c_void_p, _Samples, _Samples, _Samples]
    library.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    library.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    library.speex_preprocess_state_init.restype = ctypes.c_void_p
    library.speex_preprocess_state_destroy.argtypes = [ctypes.c_void_p]
    library.speex_preprocess_run.argtypes = [ctypes.c_void_p, _Samples]
    library.speex_preprocess_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    return library


def _samples(array: np.ndarray) -> ctypes._Pointer[ctypes.c_int16]:
    return array.ctypes.data_as(_Samples)


class SpeexEchoState:
    """Speex's MDF echo canceller: subtracts the modelled echo of ``reference`` from ``captured``.

    ``filter_length`` samples of echo path are modelled (the tail: how long
    after a sample is played its echo can still reach the microphone).
    """

    def __init__(self, frame_size: int, filter_length: int, sample_rate: int) -> None:
        self._lib = load_library()
        self.frame_size = frame_size
        handle = self._lib.speex_echo_state_init(frame_size, filter_length)
        if not handle:
            raise SpeexUnavailable("speex_echo_state_init failed")
        self.handle: int = handle
        rate = ctypes.c_int(sample_rate)
        self._lib.speex_echo_ctl(self.handle, _ECHO_SET_SAMPLING_RATE, ctypes.byref(rate))
        self._out = np.zeros(frame_size, dtype=np.int16)

    def cancel(self, captured: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """One frame of microphone samples with the echo of one reference frame removed (a new array)."""
        if captured.shape != (self.frame_size,) or reference.shape != (self.frame_size,):
            raise ValueError(f"echo canceller frames are {self.frame_size} samples")
        captured = np.ascontiguousarray(captured, dtype=np.int16)
        reference = np.ascontiguousarray(reference, dtype=np.int16)
        self._lib.speex_echo_cancellation(self.handle, _samples(captured), _samples(reference), _samples(self._out))
        return self._out.copy()

    def close(self) -> None:
        if self.handle:
            self._lib.speex_echo_state_destroy(self.handle)
            self.handle = 0

    def __del__(self) -> None:
        self.close()


class SpeexPreprocessor:
    """Speex's preprocessor, used for residual echo suppression after the canceller.

    A linear canceller leaves the echo its filter could not model (loudspeaker
    distortion, a tail longer than the filter); the preprocessor estimates that
    residue from the canceller's state and suppresses it spectrally.
    ``echo_suppress_db`` applies while only the far end talks,
    ``echo_suppress_active_db`` during double talk (milder, to keep the user).
    """

    def __init__(
        self,
        frame_size: int,
        sample_rate: int,
        echo: SpeexEchoState,
        *,
        noise_suppress_db: int = -15,
        echo_suppress_db: int = -40,
        echo_suppress_active_db: int = -15,
    ) -> None:
        self._lib = load_library()
        self.frame_size = frame_size
        handle = self._lib.speex_preprocess_state_init(frame_size, sample_rate)
        if not handle:
            raise SpeexUnavailable("speex_preprocess_state_init failed")
        self.handle: int = handle
        self._echo = echo  # kept alive: the preprocessor holds a pointer to it
        # Speex applies echo suppression in the same spectral gain as noise suppression:
        # with denoising off it applies no gain at all, so it stays on (mildly).
        self._set(_PREPROCESS_SET_DENOISE, 1)
        self._set(_PREPROCESS_SET_NOISE_SUPPRESS, noise_suppress_db)
        self._lib.speex_preprocess_ctl(self.handle, _PREPROCESS_SET_ECHO_STATE, ctypes.c_void_p(echo.handle))
        self._set(_PREPROCESS_SET_ECHO_SUPPRESS, echo_suppress_db)
        self._set(_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, echo_suppress_active_db)

    def _set(self, request: int, value: int) -> None:
        number = ctypes.c_int(value)
        self._lib.speex_preprocess_ctl(self.handle, request, ctypes.byref(number))

    def run(self, frame: np.ndarray) -> np.ndarray:
        """Process one frame (a new array)."""
        if frame.shape != (self.frame_size,):
            raise ValueError(f"preprocessor frames are {self.frame_size} samples")
        out = np.array(frame, dtype=np.int16, copy=True)
        self._lib.speex_preprocess_run(self.handle, _samples(out))
        return out

    def close(self) -> None:
        if self.handle:
            self._lib.speex_preprocess_state_destroy(self.handle)
            self.handle = 0

    def __del__(self) -> None:
        self.close()
