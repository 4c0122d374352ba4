"""Audio devices as PortAudio sees them, and picking one by index or name.

sounddevice is imported lazily: it enumerates devices once, at import, and the
import itself fails when libportaudio is missing; both are turned into a
one-line DeviceError instead of a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from voiceskill.errors import UserError

Kind = Literal["input", "output"]


class DeviceError(UserError):
    """No usable audio device; the message is one line, fit to show the user."""


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    inputs: int
    outputs: int
    default_input: bool
    default_output: bool
    default_samplerate: float

    def channels(self, kind: Kind) -> int:
        return self.inputs if kind == "input" else self.outputs

    def is_default(self, kind: Kind) -> bool:
        return self.default_input if kind == "input" else self.default_output


def sounddevice() -> ModuleType:
    """The sounddevice module, or DeviceError if PortAudio cannot be loaded or started."""
    try:
        import sounddevice as sd
    except OSError as exc:  # libportaudio is missing
        raise DeviceError(f"audio unavailable: PortAudio library not found ({exc})") from exc
    except Exception as exc:  # PortAudioError raised by Pa_Initialize at import
        raise DeviceError(f"audio unavailable: {exc}") from exc
    return sd


def list_devices() -> list[DeviceInfo]:
    """All devices PortAudio found, with the default input and output marked."""
    sd = sounddevice()
    default_input, default_output = sd.default.device
    return [
        DeviceInfo(
            index=index,
            name=device["name"],
            inputs=device["max_input_channels"],
            outputs=device["max_output_channels"],
            default_input=index == default_input,
            default_output=index == default_output,
            default_samplerate=device["default_samplerate"],
        )
        for index, device in enumerate(sd.query_devices())
    ]


def find_device(spec: int | str | None, kind: Kind | None = None) -> int | None:
    """Resolve a device index or a case-insensitive name substring to an index.

    `None` means PortAudio's default device and is returned as is, after
    checking (when `kind` is given) that such a default exists. Raises
    DeviceError when nothing, or more than one device, matches.
    """
    devices = [d for d in list_devices() if kind is None or d.channels(kind) > 0]
    what = f"{kind} device" if kind else "device"
    if not devices:
        raise DeviceError(f"no audio {what} found")
    if spec is None:
        if kind is not None and not any(d.is_default(kind) for d in devices):
            raise DeviceError(f"no default audio {what}")
        return None
    if isinstance(spec, int) or spec.strip().isdigit():
        index = int(spec)
        if any(d.index == index for d in devices):
            return index
        raise DeviceError(f"no audio {what} with index {index}")
    wanted = spec.strip().lower()
    exact = [d for d in devices if d.name.lower() == wanted]
    matches = exact or [d for d in devices if wanted in d.name.lower()]
    if len(matches) == 1:
        return matches[0].index
    if not matches:
        raise DeviceError(f"no audio {what} matches {spec!r}")
    names = ", ".join(f"{d.index}: {d.name}" for d in matches)
    raise DeviceError(f"{spec!r} matches several audio devices ({names}); give the index")
