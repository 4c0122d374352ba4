"""Command line: `voiceskill ask|replay|listen|say|check|devices` (contract in DESIGN.md).

Every failure the user can cause or meet (bad YAML, bad WAV, no model, no audio device)
ends as one line on stderr and an exit status, never a traceback.
Exit status: 0 fine, 1 some input was bad (files still processed), 2 cannot run at all.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from voiceskill.content import Content, ContentError, load_content, normalize
from voiceskill.errors import UserError
from voiceskill.frontend import DEFAULT_FRONTEND, FRONTENDS
from voiceskill.pipeline import DEFAULT_RATE, Skill, TurnLog, report


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--intents", type=Path, help="content folder (default: the shipped one)")
    parser.add_argument("--json", action="store_true", help="one JSON object per turn on stdout")
    parser.add_argument(
        "--log-dir", type=Path, help="keep a conversation log here (JSON lines, mode 0600)"
    )


def _speech_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-speak", action="store_true", help="print answers, do not speak")
    parser.add_argument("--rate", type=int, default=DEFAULT_RATE, help="words per minute")
    parser.add_argument("--voice", help="TTS voice id or name part, e.g. en-gb")
    parser.add_argument("--output-device", help="output device index or name part")
    parser.add_argument(
        "--save-audio", "-o", type=Path, metavar="DIR", help="also write spoken answers as WAV"
    )


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=["auto", "pocketsphinx", "vosk"], default="auto")
    parser.add_argument("--vosk-model", type=Path, help="Vosk model folder (or VOSK_MODEL_PATH)")
    parser.add_argument("--frontend", choices=FRONTENDS, default=DEFAULT_FRONTEND,
                        help=f"speech enhancement before recognition (default {DEFAULT_FRONTEND})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voiceskill",
        description="Offline answers about muscle twitches, spasms and when to see a doctor.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    ask = commands.add_parser("ask", help="typed turns of one conversation")
    ask.add_argument("text", nargs="+", metavar="TEXT")
    ask.add_argument("--separate", action="store_true", help="each TEXT its own conversation")
    _common(ask)
    _speech_options(ask)

    replay = commands.add_parser("replay", help="recorded WAV turns of one conversation")
    replay.add_argument("wav", nargs="+", type=Path, metavar="WAV")
    replay.add_argument("--separate", action="store_true", help="each WAV its own conversation")
    _common(replay)
    _speech_options(replay)
    _engine_options(replay)

    listen = commands.add_parser("listen", help="live microphone loop")
    _common(listen)
    _speech_options(listen)
    _engine_options(listen)
    listen.add_argument("--input-device", help="input device index or name part")
    listen.add_argument("--wake", metavar="PHRASE", help="answer only after this phrase")
    listen.add_argument("--no-echo-cancel", dest="echo_cancel", action="store_false",
                        help="do not cancel the skill's own voice from the microphone")

    say = commands.add_parser("say", help="speak TEXT (or write it to a WAV)")
    say.add_argument("text", nargs="+", metavar="TEXT")
    say.add_argument("-o", "--output", type=Path, help="write a WAV instead of playing")
    say.add_argument("--rate", type=int, default=DEFAULT_RATE)
    say.add_argument("--voice")
    say.add_argument("--output-device")

    check = commands.add_parser("check", help="validate the intents/ YAML")
    check.add_argument("path", nargs="?", type=Path, help="content folder (default: shipped)")

    commands.add_parser("devices", help="list audio devices")
    return parser


def _fail(message: str, status: int = 2) -> int:
    print(f"voiceskill: {message}", file=sys.stderr)
    return status


def _make_speaker(args: argparse.Namespace, play: bool):
    """The TTS stage, or None with a one-line warning when no voice engine is available."""
    from voiceskill.tts import Speaker, TtsUnavailable, VoiceSettings

    try:
        speaker = Speaker(
            VoiceSettings(rate=args.rate, voice=args.voice),
            output_device=args.output_device,
            play=play,
        )
    except TtsUnavailable as exc:
        print(f"voiceskill: {exc}; printing answers only", file=sys.stderr)
        return None
    if play and not speaker.can_play:
        print(f"voiceskill: {speaker.warning}; printing answers only", file=sys.stderr)
    return speaker


def _skill(args: argparse.Namespace, content: Content, recognizer=None) -> Skill:
    wants_speaker = not args.no_speak or args.save_audio is not None
    speaker = _make_speaker(args, play=not args.no_speak) if wants_speaker else None
    return Skill(content, speaker, recognizer, rate=args.rate, save_audio=args.save_audio)


def _run_turns(skill: Skill, args: argparse.Namespace, inputs: list, take_turn) -> int:
    """Feed inputs as turns of one conversation (or each its own); bad inputs don't stop it."""
    status = 0
    log = TurnLog(args.log_dir) if args.log_dir else None
    conversation = skill.conversation()
    try:
        for item in inputs:
            if args.separate or conversation.ended:
                conversation = skill.conversation()
            turn = take_turn(conversation, item)
            report(turn, args.json)
            if log:
                log.write(turn)
            status = 1 if turn.error else status
    finally:
        if log:
            log.close()
    return status


def _cmd_ask(args: argparse.Namespace, content: Content) -> int:
    skill = _skill(args, content)
    return _run_turns(skill, args, args.text, skill.text_turn)


def _recognizer(args: argparse.Namespace, content: Content):
    from voiceskill.asr import create_recognizer
    from voiceskill.frontend import create_enhancer, with_frontend

    model = args.vosk_model or os.environ.get("VOSK_MODEL_PATH")
    sentences = content.domain_sentences()
    if getattr(args, "wake", None):
        sentences["wake"] = [normalize(args.wake)]
    recognizer = create_recognizer(args.engine, sentences, vosk_model=model)
    return with_frontend(recognizer, create_enhancer(args.frontend))


def _cmd_replay(args: argparse.Namespace, content: Content) -> int:
    skill = _skill(args, content, _recognizer(args, content))
    return _run_turns(skill, args, args.wav, skill.audio_turn)


def _cmd_listen(args: argparse.Namespace, content: Content) -> int:
    from voiceskill.live import Microphone, listen

    microphone = Microphone(args.input_device)  # first: no microphone, nothing else to set up
    skill = _skill(args, content, _recognizer(args, content))
    return listen(skill, args, microphone)


def _cmd_say(args: argparse.Namespace) -> int:
    speaker = _make_speaker(args, play=args.output is None)
    text = " ".join(args.text)
    if speaker is None:
        print(text)
        return 2
    if args.output is not None:
        speaker.save(text, args.output, args.rate)
        print(f"wrote {args.output}", file=sys.stderr)
    elif not speaker.can_play:
        print(text)
    else:
        speaker.speak(text, args.rate)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        content = load_content(args.path)
    except ContentError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    sentences = sum(len(s) for s in content.intents.values())
    print(
        f"ok: {content.folder}: {len(content.intents)} intents, {sentences} sample sentences, "
        f"{len(content.nodes)} dialogue nodes"
    )
    return 0


def _cmd_devices() -> int:
    from voiceskill.devices import list_devices

    found = list_devices()
    if not found:
        return _fail("no audio devices found")
    for device in found:
        defaults = [kind for kind, flag in (("default input", device.default_input),
                                            ("default output", device.default_output)) if flag]
        extra = f"  ({', '.join(defaults)})" if defaults else ""
        print(f"{device.index:3}  {device.name}  in:{device.inputs} out:{device.outputs}{extra}")
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        return _cmd_check(args)
    if args.command == "say":
        return _cmd_say(args)
    if args.command == "devices":
        return _cmd_devices()
    try:
        content = load_content(args.intents)
    except ContentError as exc:
        return _fail(f"content has problems (run `voiceskill check`):\n{exc}")
    commands = {"ask": _cmd_ask, "replay": _cmd_replay, "listen": _cmd_listen}
    return commands[args.command](args, content)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except UserError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
