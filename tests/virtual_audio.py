"""A private, headless PulseAudio with a virtual microphone and a virtual speaker.

Lets tests exercise real sounddevice recording and playback on a machine with
no sound card. Recipe and pitfalls: /work/shared/notes/virtual-audio.md.

    vmic_feed (null sink)  <- play_into_mic() writes here with paplay
      └ monitor -> vmic (remap source, the default input the program records)
    vspeaker (null sink, the default output the program plays to)
      └ monitor -> record_speaker() reads here with parecord

sounddevice enumerates devices once, at import, so the program under test must
run as a subprocess started with `VirtualAudio.env`.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from fixturegen import REVERB_ROOMS

SAMPLE_RATE = 16_000
"""Both null sinks run at 16 kHz mono s16, so 16 kHz mono audio passes bit-exact."""

_READY_TIMEOUT_S = 10.0
_STOP_TIMEOUT_S = 5.0

_SPEC = "rate=16000 channels=1 format=s16le"
_DEFAULT_PA = f"""\
load-module module-native-protocol-unix socket={{dir}}/pulse.sock auth-anonymous=1 \
auth-cookie={{dir}}/cookie
load-module module-null-sink sink_name=vspeaker {_SPEC}
load-module module-null-sink sink_name=vmic_feed {_SPEC}
load-module module-remap-source master=vmic_feed.monitor source_name=vmic
load-module module-null-sink sink_name=vdrain {_SPEC}
set-default-sink vspeaker
set-default-source vmic
# An idle null sink works in blocks of up to 2 s (first audio 0.6-2 s late):
# keep both sinks busy through a low-latency loopback, then restart them.
load-module module-loopback source=vmic sink=vdrain latency_msec=20
load-module module-loopback source=vspeaker.monitor sink=vdrain latency_msec=20
suspend-sink vspeaker 1
suspend-sink vspeaker 0
suspend-sink vmic_feed 1
suspend-sink vmic_feed 0
"""

_ASOUND_CONF = """\
# Loaded through a hook so that Debian's /etc/alsa/conf.d/99-pulse.conf does
# not silently override our default PCM.
@hooks [
\t{{
\t\tfunc load
\t\tfiles [ "{dir}/pulse-pcms.conf" ]
\t\terrors false
\t}}
]
"""

# The stock pulse PCMs underrun and cut playback short: handle_underrun false on all of them.
_PULSE_PCMS_CONF = """\
pcm.!default {
\ttype pulse
\thandle_underrun false
\thint { show on description "Virtual PulseAudio (tests)" }
}
ctl.!default { type pulse }
pcm.!pulse {
\t@args [ DEVICE ]
\t@args.DEVICE { type string default "" }
\ttype pulse
\tdevice $DEVICE
\thandle_underrun false
\thint { show on description "Virtual PulseAudio (tests)" }
}
ctl.!pulse {
\t@args [ DEVICE ]
\t@args.DEVICE { type string default "" }
\ttype pulse
\tdevice $DEVICE
}
"""


class VirtualAudioError(RuntimeError):
    """The private PulseAudio daemon could not be started."""


@dataclass
class Recording:
    """A running parecord; `stop()` ends it and returns the finished WAV."""

    process: subprocess.Popen[bytes]
    path: Path

    def heard(self) -> np.ndarray:
        """The samples recorded so far, read while parecord is still writing the WAV."""
        raw = self.path.read_bytes()
        start = raw.find(b"data", 0, 1024) + 8  # the header's size fields are filled in at stop
        return np.frombuffer(raw[start : start + (len(raw) - start) // 2 * 2], dtype="<i2")

    def wait_until(
        self, what: str, condition: Callable[[np.ndarray], bool], timeout_s: float = 60.0,
        context: Callable[[], str] = str,
    ) -> np.ndarray:
        """Poll what has been heard until `condition` holds; only a real hang hits the deadline,
        and then says what was recorded and `context()`."""
        deadline = time.monotonic() + timeout_s
        while not condition(samples := self.heard()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the speaker never {what} within {timeout_s:.0f} s (recorded "
                    f"{len(samples) / SAMPLE_RATE:.1f} s, {active_span(samples) / SAMPLE_RATE:.1f}"
                    f" s of it sound, parecord exit {self.process.poll()}) {context()}")
            time.sleep(0.05)
        return samples

    def stop(self, tail_s: float = 0.3) -> Path:
        """Keep recording `tail_s` more, for audio the server still buffers, then stop."""
        time.sleep(tail_s)
        # SIGTERM to parecord itself: a SIGINT through `timeout` once left a WAV without header.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        _wait_or_kill(self.process)
        return self.path


class VirtualAudio:
    """Runs the daemon in its own temporary directory; nothing in /etc or $HOME changes."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._daemon: subprocess.Popen[bytes] | None = None
        self._clients: list[subprocess.Popen[bytes]] = []
        self.start_seconds = 0.0
        """How long the daemon took to answer `pactl info` (for reports)."""

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients: the program under test, paplay, parecord."""
        directory = self._require_dir()
        env = dict(os.environ)
        env.update(
            PULSE_SERVER=f"unix:{directory}/pulse.sock",
            PULSE_COOKIE=f"{directory}/cookie",
            PULSE_CLIENTCONFIG=f"{directory}/client.conf",
            ALSA_CONFIG_PATH=f"/usr/share/alsa/alsa.conf:{directory}/asound.conf",
        )
        return env

    def start(self) -> VirtualAudio:
        """Start the daemon and wait until it answers; raises VirtualAudioError if it cannot."""
        if shutil.which("pulseaudio") is None:
            raise VirtualAudioError("pulseaudio is not installed")
        self._dir = Path(tempfile.mkdtemp(prefix="voiceskill-pulse-"))
        self._write_config(self._dir)
        started = time.monotonic()
        self._daemon = subprocess.Popen(
            [
                "pulseaudio", "--daemonize=no", "--exit-idle-time=-1", "--system=false", "-n",
                f"-F{self._dir}/default.pa", "--use-pid-file=no", "--realtime=no",
                # Its CPU limiter ends a daemon that used 70 % of a core for 10 s: on two
                # busy cores a test run is not worth that risk.
                "--high-priority=no", "--no-cpu-limit", f"--log-target=file:{self._dir}/pulse.log",
            ],
            env=self._daemon_env(self._dir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        try:
            self._wait_ready()
        except VirtualAudioError:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self

    def ended(self) -> str:
        """Empty while the daemon runs; once it has ended, how (its exit status and the last
        lines of its log), for a failure message."""
        if self._daemon is None or self._daemon.poll() is None:
            return ""
        status = self._daemon.returncode
        how = f"killed by {signal.Signals(-status).name}" if status < 0 else f"exit {status}"
        return f"pulseaudio ended ({how}): {self._log_tail(5)}"

    def restart_if_ended(self) -> None:
        """Start a fresh daemon (new devices, same names) if this one has ended."""
        if self.ended():
            self.stop()
            self.start()

    def stop(self) -> None:
        """SIGTERM leftover clients and the daemon, then delete the directory."""
        for client in self._clients:
            if client.poll() is None:
                client.send_signal(signal.SIGTERM)
            _wait_or_kill(client)
        self._clients.clear()
        if self._daemon is not None:
            if self._daemon.poll() is None:
                self._daemon.send_signal(signal.SIGTERM)
            _wait_or_kill(self._daemon)
            self._daemon = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> VirtualAudio:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def play_into_mic(self, wav_path: Path, block: bool = True) -> subprocess.Popen[bytes]:
        """Play a WAV into the virtual microphone; with block=False the caller waits on it."""
        process = self._client(["paplay", "-d", "vmic_feed", str(wav_path)])
        if block:
            _wait_or_kill(process, timeout=60.0)
        return process

    def record_speaker(self, path: Path, device: str = "vspeaker.monitor") -> Recording:
        """Record what is played to the virtual speaker (16 kHz mono s16 WAV).

        Returns once audio is actually flowing into the file, so nothing played
        after this call is missed.
        """
        process = self._client(
            [
                "parecord", "-d", device, "--rate=16000", "--channels=1",
                "--format=s16le", "--file-format=wav", str(path),
            ]
        )
        recording = Recording(process, path)
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while not (path.exists() and path.stat().st_size > 1000):
            if process.poll() is not None or time.monotonic() > deadline:
                recording.stop(tail_s=0)
                raise VirtualAudioError(f"parecord did not start recording (exit {process.poll()})")
            time.sleep(0.01)
        return recording

    def start_echo_path(self, delay_s: float = 0.06, gain_db: float = -6.0,
                        room: str | None = None) -> None:
        """Feed what the speaker plays back into the microphone, as a loudspeaker in the same
        room would: about `delay_s` late and `gain_db` quieter. Runs until stop().

        Without `room`, the default speaker becomes `vspeaker_echo`, a sink feeding the
        microphone directly (its own latency is the delay; `delay_s` is not used); record it
        from `vspeaker_echo.monitor`. With a `room` (tools/fixturegen.REVERB_ROOMS) the path is
        parec -> sox delay + reverb -> pacat, since PulseAudio cannot reverberate; that pipe's
        delay jumps by a few ms now and then (measured: 3.75 -> 10 -> 12 ms within one
        answer), which an echo canceller must re-learn each time.
        """
        if room is None:
            # The program's speaker becomes a filter sink on the microphone's own sink: one
            # clock, so the echo keeps one delay (a module-loopback resamples to track two).
            self.pactl("load-module", "module-remap-sink", "sink_name=vspeaker_echo",
                       "master=vmic_feed", _SPEC)
            self.pactl("set-sink-volume", "vspeaker_echo", f"{gain_db}dB")
            self.pactl("set-default-sink", "vspeaker_echo")
            return
        raw = ["--rate=16000", "--channels=1", "--format=s16le", "--latency-msec=10"]
        sox_raw = ["-t", "raw", "-r", "16000", "-e", "signed", "-b", "16", "-c", "1"]
        effects = ["gain", str(gain_db), "delay", str(delay_s),
                   "reverb", *(str(v) for v in REVERB_ROOMS[room])]
        source = self._client(["parec", "-d", "vspeaker.monitor", *raw], stdout=subprocess.PIPE)
        shaper = self._client(["sox", "--buffer", "320", *sox_raw, "-", *sox_raw, "-", *effects],
                              stdin=source.stdout, stdout=subprocess.PIPE)
        self._client(["pacat", "--playback", "-d", "vmic_feed", *raw], stdin=shaper.stdout)
        source.stdout.close()  # the pipes now belong to the next process only
        shaper.stdout.close()

    def record_speaker_echo(self, path: Path) -> Recording:
        """Like record_speaker, for the speaker of start_echo_path() without a room."""
        return self.record_speaker(path, device="vspeaker_echo.monitor")

    def pactl(self, *args: str) -> str:
        """Run pactl against the private daemon and return its output."""
        result = subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10
        )
        if result.returncode != 0:
            raise VirtualAudioError(f"pactl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def _client(self, argv: list[str], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            argv, env=self.env, stdin=stdin, stdout=stdout, stderr=subprocess.DEVNULL,
        )
        self._clients = [client for client in self._clients if client.poll() is None]
        self._clients.append(process)
        return process

    def _wait_ready(self) -> None:
        assert self._daemon is not None
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._daemon.poll() is not None:
                raise VirtualAudioError(f"pulseaudio exited at start: {self._log_tail()}")
            probe = subprocess.run(
                ["pactl", "info"], env=self.env, capture_output=True, timeout=10
            )
            if probe.returncode == 0:
                return
            time.sleep(0.01)
        raise VirtualAudioError(f"pulseaudio did not answer within {_READY_TIMEOUT_S} s")

    def _log_tail(self, count: int = 1) -> str:
        """The last `count` errors of the daemon's log (its last lines if it logged none)."""
        log = self._require_dir() / "pulse.log"
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        errors = [line for line in lines if line.startswith("E:")]
        return " | ".join((errors or lines or ["no log"])[-count:])

    def _require_dir(self) -> Path:
        if self._dir is None:
            raise VirtualAudioError("virtual audio is not started")
        return self._dir

    @staticmethod
    def _write_config(directory: Path) -> None:
        (directory / "default.pa").write_text(_DEFAULT_PA.format(dir=directory))
        (directory / "asound.conf").write_text(_ASOUND_CONF.format(dir=directory))
        (directory / "pulse-pcms.conf").write_text(_PULSE_PCMS_CONF)
        # Never let a client autospawn a stray daemon when ours is unreachable.
        (directory / "client.conf").write_text("autospawn = no\n")
        for sub in ("runtime", "state", "config", "xdg-runtime"):
            (directory / sub).mkdir(mode=0o700)

    @staticmethod
    def _daemon_env(directory: Path) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("PULSE_SERVER", "PULSE_COOKIE", "PULSE_CLIENTCONFIG"):
            env.pop(name, None)
        env.update(
            PULSE_RUNTIME_PATH=f"{directory}/runtime",
            PULSE_STATE_PATH=f"{directory}/state",
            XDG_CONFIG_HOME=f"{directory}/config",
            XDG_RUNTIME_DIR=f"{directory}/xdg-runtime",
        )
        return env


def _die_with_parent() -> None:
    """In the child: get SIGTERM if the test process dies without stopping us (Linux)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _wait_or_kill(process: subprocess.Popen[bytes], timeout: float = _STOP_TIMEOUT_S) -> None:
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class Match:
    """Where a reference signal was found in a recording, and how well it matched."""

    offset: int
    correlation: float


def find_signal(recording: np.ndarray, reference: np.ndarray) -> Match:
    """Locate `reference` in `recording` by cross-correlation (both at the same rate).

    `correlation` is the normalised correlation where they overlap: 1.0 for a
    bit-exact copy, near 0 for unrelated audio or silence. The reference may run
    past the end of the recording (its trailing silence often does).
    """
    rec = recording.astype(np.float64)
    ref = reference.astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(rec) + len(ref))))
    xcorr = np.fft.irfft(np.fft.rfft(rec, size) * np.conj(np.fft.rfft(ref, size)), size)
    offset = int(np.argmax(xcorr[: len(rec)]))
    segment = rec[offset : offset + len(ref)]
    ref = ref[: len(segment)]
    denominator = np.linalg.norm(segment) * np.linalg.norm(ref)
    correlation = float(segment @ ref / denominator) if denominator else 0.0
    return Match(offset, correlation)


def fell_quiet(samples: np.ndarray, quiet_s: float = 1.0, threshold: int = 300) -> bool:
    """Something was played, and the last `quiet_s` seconds are silent."""
    tail = int(quiet_s * SAMPLE_RATE)
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    return len(loud) > 0 and len(samples) - loud[-1] > tail


def active_span(samples: np.ndarray, threshold: int = 300) -> int:
    """Number of samples from the first to the last one louder than `threshold`."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    return int(loud[-1] - loud[0] + 1) if len(loud) else 0


def rendered(text: str, tmp_path: Path, rate: int = 165) -> np.ndarray:
    """What `voiceskill say -o` makes of `text`, at 16 kHz like the recording."""
    out = tmp_path / "reference.wav"
    subprocess.run([sys.executable, "-m", "voiceskill", "say", "--rate", str(rate), "-o",
                    str(out), text], check=True, capture_output=True, timeout=60)
    samples, rate_hz = sf.read(out, dtype="float32")
    return (soxr.resample(samples, rate_hz, 16_000) * 32767).astype(np.int16)


def played_through(reference: np.ndarray):
    """A condition for Recording.wait_until: `reference` has been heard to its last sound."""
    last_sound = int(np.flatnonzero(np.abs(reference.astype(np.int32)) > 300)[-1])

    def condition(heard: np.ndarray) -> bool:
        match = find_signal(heard, reference)
        return match.correlation > 0.5 and len(heard) > match.offset + last_sound

    return condition


def trimmed(wav: Path, tmp_path: Path) -> Path:
    """`wav` from 0.1 s before its first sound (the fixtures start with 0.3 s of silence)."""
    samples, rate = sf.read(wav, dtype="int16")
    first = max(0, int(np.flatnonzero(np.abs(samples.astype(np.int32)) > 300)[0]) - rate // 10)
    out = tmp_path / f"trimmed-{wav.name}"
    sf.write(out, samples[first:], rate, subtype="PCM_16")
    return out
