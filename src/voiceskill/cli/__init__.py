"""Command line: `voiceskill ask|replay|listen|serve|say|check|devices` (contract in DESIGN.md).

Every failure the user can cause or meet (bad YAML, bad WAV, bad config, no model, no audio
device) ends as one line on stderr and an exit status, never a traceback.
Exit status: 0 fine, 1 some input was bad (files still processed), 2 cannot run at all,
130 interrupted, 141 stdout closed by its reader.
Settings come from the flags, then the config file (config.py), then the built-in defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from voiceskill.config import DEFAULT_FRONTEND, ENGINES, FRONTENDS, load_config, rate_problem
from voiceskill.content import Content, load_content
from voiceskill.content.yamlsafe import ContentError
from voiceskill.errors import UserError
from voiceskill.nlu import IntentMatcher
from voiceskill.nlu.embedding import load_in_background
from voiceskill.outputs import reason, write_whole
from voiceskill.pipeline import DEFAULT_RATE, Skill
from voiceskill.present import Status, TurnLog, open_status_stream, report
from voiceskill.text import normalize

DEFAULT_URI = "tcp://127.0.0.1:10600"
BUILT_IN = {
    "engine": "auto", "vosk_model": None, "voice": None, "rate": DEFAULT_RATE, "wake": None,
    "uri": DEFAULT_URI,
}
"""Defaults of the settings the config file may also give (flags default to None)."""
PRINTS = ("ask", "replay", "listen", "check", "devices")
"""Commands whose result goes to standard output: without one they would be lost."""

log = logging.getLogger("voiceskill")


def _content_option(parser: argparse.ArgumentParser) -> None:
    """--content DIR, the same for every command; --intents is accepted as another name."""
    parser.add_argument("--content", "--intents", dest="content", type=Path, metavar="DIR",
                        help="content folder (default: the shipped one)")


def _common(parser: argparse.ArgumentParser) -> None:
    _content_option(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per turn on stdout")
    parser.add_argument(
        "--log-dir", type=Path, help="keep a conversation log here (JSON lines, mode 0600)"
    )


def _rate(text: str) -> int:
    """--rate: whole words per minute within what espeak-ng can say."""
    try:
        rate = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    problem = rate_problem(rate)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return rate


def _speech_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-speak", action="store_true", help="print answers, do not speak")
    parser.add_argument("--rate", type=_rate, help=f"words per minute (default {DEFAULT_RATE})")
    parser.add_argument("--voice", help="TTS voice id or name part, e.g. en-gb")
    parser.add_argument("--output-device", help="output device index or name part")
    parser.add_argument(
        "--save-audio", "-o", type=Path, metavar="DIR", help="also write spoken answers as WAV"
    )


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=ENGINES)
    parser.add_argument("--vosk-model", type=Path, help="Vosk model folder (or VOSK_MODEL_PATH)")
    parser.add_argument("--frontend", choices=FRONTENDS, default=DEFAULT_FRONTEND,
                        help=f"speech enhancement before recognition (default {DEFAULT_FRONTEND})")


class _ShowVersion(argparse.Action):
    """--version, looked up only when asked for (see voiceskill.__getattr__)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        import voiceskill

        print(f"{parser.prog} {voiceskill.__version__}")  # on stdout, as argparse's own
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voiceskill",
        description="Offline answers about muscle twitches, spasms and when to see a doctor.",
    )
    parser.add_argument("--version", action=_ShowVersion)
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("--debug", action="store_true", help="log every step on stderr")
    verbosity.add_argument("--quiet", action="store_true", help="log errors only")
    commands = parser.add_subparsers(dest="command", required=True)

    ask = commands.add_parser("ask", help="typed turns of one conversation")
    ask.add_argument("text", nargs="+", metavar="TEXT")
    ask.add_argument("--separate", action="store_true", help="each TEXT its own conversation")
    _common(ask)
    _speech_options(ask)

    replay = commands.add_parser("replay", help="recorded WAV turns of one conversation")
    replay.add_argument("wav", nargs="+", metavar="WAV")  # not Path: Path("") is "."
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
    listen.add_argument("--status-json", type=Path, metavar="FILE",
                        help="also write each change of status to FILE, one JSON object a line")

    serve = commands.add_parser("serve", help="Wyoming service for Home Assistant (handle + asr)")
    serve.add_argument(
        "--uri", help=f"tcp://HOST:PORT, unix://PATH or stdio:// (default {DEFAULT_URI})"
    )
    serve.add_argument(
        "--zeroconf", nargs="?", const="voiceskill", metavar="NAME",
        help="announce the service on the local network (tcp:// only)",
    )
    _content_option(serve)
    _engine_options(serve)

    say = commands.add_parser("say", help="speak TEXT (or write it to a WAV)")
    say.add_argument("text", nargs="+", metavar="TEXT")
    say.add_argument("-o", "--output", type=Path, help="write a WAV instead of playing")
    say.add_argument("--rate", type=_rate, help=f"words per minute (default {DEFAULT_RATE})")
    say.add_argument("--voice")
    say.add_argument("--output-device")

    check = commands.add_parser("check", help="validate the intents/ YAML")
    check.add_argument("path", nargs="?", type=Path, help="content folder (default: shipped)")
    _content_option(check)

    commands.add_parser("devices", help="list audio devices")
    _review_parsers(commands)
    return parser


def _fail(message: str, status: int = 2) -> int:
    print(f"voiceskill: {message}", file=sys.stderr)
    return status


def _make_speaker(args: argparse.Namespace, play: bool):
    """The TTS stage, or None with a one-line warning when no voice engine is available."""
    from voiceskill.tts.speaker import Speaker, TtsUnavailable, VoiceSettings

    try:
        speaker = Speaker(
            VoiceSettings(rate=args.rate, voice=args.voice),
            output_device=args.output_device,
            play=play,
        )
    except TtsUnavailable as exc:
        log.warning("%s; printing answers only", exc)
        return None
    if play and not speaker.can_play:
        log.warning("%s; printing answers only", speaker.warning)
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
    return _run_turns(skill, args, [_as_typed(text) for text in args.text], skill.text_turn)


def _recognizer(args: argparse.Namespace, content: Content):
    from voiceskill.asr import create_recognizer
    from voiceskill.asr.frontend import create_enhancer, with_frontend

    model = args.vosk_model or os.environ.get("VOSK_MODEL_PATH")
    sentences = content.domain_sentences()
    if getattr(args, "wake", None):
        sentences["wake"] = [normalize(_as_typed(args.wake))]
    recognizer = create_recognizer(args.engine, sentences, vosk_model=model,
                                   pronunciations=content.lexicon.pronunciations,
                                   concepts=content.lexicon.concepts)
    return with_frontend(recognizer, create_enhancer(args.frontend))


def _heard_skill(args: argparse.Namespace, content: Content) -> Skill:
    """The skill of `replay` and `listen`: the recogniser and front-end their flags name."""
    return _skill(args, content, _recognizer(args, content))


def assemble(argv: list[str], content: Content) -> Skill:
    """The skill the `replay` or `listen` command line `argv` assembles (flags, then the
    config file, then the defaults; the recogniser and front-end it names), without running
    the command. Public because tests drive in one process exactly what the command would:
    the recogniser it builds, the turns it takes."""
    args = build_parser().parse_args(argv)
    _apply_config(args)
    return _heard_skill(args, content)


def _cmd_replay(args: argparse.Namespace, content: Content) -> int:
    skill = _heard_skill(args, content)
    return _run_turns(skill, args, args.wav, skill.audio_turn)


def _cmd_listen(args: argparse.Namespace, content: Content) -> int:
    from voiceskill.live import Microphone, listen

    microphone = Microphone(args.input_device)  # first: no microphone, nothing else to set up
    stream = open_status_stream(args.status_json) if args.status_json else None
    return listen(_heard_skill(args, content), args, microphone, Status(stream))


def _cmd_serve(args: argparse.Namespace, content: Content) -> int:
    import asyncio

    from voiceskill.serve import SkillService, serve

    service = SkillService(Skill(content, recognizer=_recognizer(args, content)))
    return asyncio.run(serve(service, args.uri, args.zeroconf))


def _cmd_say(args: argparse.Namespace) -> int:
    text = " ".join(_as_typed(part) for part in args.text)
    if not text.strip():
        return _fail("nothing to say: the text is empty", 1)
    speaker = _make_speaker(args, play=args.output is None)
    if speaker is None:
        print(text)
        return 2
    if args.output is not None:
        # rendered first, then written whole: a failure leaves an existing file as it was
        from voiceskill.tts.speaker import encode_wav

        audio = speaker.render(text, args.rate)
        if len(audio.samples) == 0:
            return _fail(f"not written {args.output}: the voice made no sound for that text", 1)
        write_whole(args.output, encode_wav(audio))
        print(f"wrote {args.output}", file=sys.stderr)
    elif not speaker.can_play:
        print(text)
    else:
        speaker.speak(text, args.rate)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    if args.path and args.content:
        return _fail("check: give the content folder once (PATH or --content)")
    try:
        content = load_content(args.path or args.content)
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


# --- review sheet and tree picture (voiceskill review / graph) ------------------------------


def _review_parsers(commands) -> None:
    review = commands.add_parser("review", help="write the clinician's review sheet (HTML)")
    _content_option(review)
    review.add_argument("--source-dir", type=Path,
                        help="folder holding the cited documents (default: ../shared/seed)")
    review.add_argument("-o", "--output", type=Path, default=Path("review.html"))
    graph = commands.add_parser("graph", help="draw the dialogue tree (.svg, .png or .dot)")
    _content_option(graph)
    graph.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")


def _lenient_content(folder: Path | None) -> Content:
    """Content whose flaws the review shows; only unusable YAML stops it."""
    try:
        return load_content(folder, strict=False)
    except ContentError as exc:
        more = len(exc.problems) - 1
        detail = f" (and {more} more; run `voiceskill check`)" if more else ""
        raise UserError(f"{exc.problems[0]}{detail}") from None


def _write(path: Path, data: bytes) -> None:
    """The page or picture, whole or not at all, never through a symlink planted at `path`."""
    write_whole(path, data)


def _cmd_review(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone
    from importlib.metadata import PackageNotFoundError, version

    from voiceskill import review
    from voiceskill.review.sources import BENCHMARK, source_dirs

    if args.source_dir is not None and not args.source_dir.is_dir():
        return _fail(f"source folder not found: {args.source_dir}")
    content = _lenient_content(args.content)
    try:
        installed = version("voiceskill")
    except PackageNotFoundError:
        installed = "unknown (not installed)"
    sign_off = review.SignOff(
        content_hash=content.fingerprint,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        version=installed,
    )
    sources = review.read_sources(content, source_dirs(args.source_dir))
    benchmark = review.read_benchmark(BENCHMARK) if BENCHMARK is not None else None
    page = review.review_html(content, sources, benchmark, sign_off)
    _write(args.output, page.encode("utf-8"))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_graph(args: argparse.Namespace) -> int:
    from voiceskill import review

    fmt = args.output.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png", "dot"):
        return _fail(f"cannot draw {args.output}: the name must end in .svg, .png or .dot")
    content = _lenient_content(args.content)
    _write(args.output, review.render_graph(content, fmt))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        return _cmd_check(args)
    if args.command == "review":
        return _cmd_review(args)
    if args.command == "graph":
        return _cmd_graph(args)
    if args.command == "say":
        return _cmd_say(args)
    if args.command == "devices":
        return _cmd_devices()
    load_in_background()  # every command below understands what it hears or reads
    try:
        content = load_content(args.content)
    except ContentError as exc:
        return _fail(f"content has problems (run `voiceskill check`):\n{exc}")
    if sys.stderr.isatty() and IntentMatcher.needs_building(content):
        print("voiceskill: learning this content's sentences, once (a minute or two)",
              file=sys.stderr)
    commands = {"ask": _cmd_ask, "replay": _cmd_replay, "listen": _cmd_listen,
                "serve": _cmd_serve}
    return commands[args.command](args, content)


def _apply_config(args: argparse.Namespace) -> None:
    """Fill the settings no flag gave from the config file, then from the built-in defaults."""
    wanted = [key for key in BUILT_IN if getattr(args, key, False) is None]
    config = load_config() if wanted else {}
    for key in wanted:
        setattr(args, key, config.get(key, BUILT_IN[key]))


def _configure_logging(args: argparse.Namespace) -> None:
    """Warnings as one `voiceskill: ...` line each; the server also says what it is doing."""
    if args.debug:
        level, form = logging.DEBUG, "%(asctime)s %(levelname)s %(name)s: %(message)s"
    else:
        usual = logging.INFO if args.command == "serve" else logging.WARNING
        level, form = (logging.ERROR if args.quiet else usual), "voiceskill: %(message)s"
    logging.basicConfig(level=level, format=form, stream=sys.stderr, force=True)


def main(argv: list[str] | None = None) -> int:
    if hasattr(sys.stdout, "reconfigure"):  # a file name that is not UTF-8 must not stop a batch
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        args = build_parser().parse_args(argv)
        _configure_logging(args)
        if sys.stdout is None and args.command in PRINTS:  # started with `>&-`
            return _fail("standard output is closed")
        _apply_config(args)
        return _dispatch(args)
    except UserError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as SIGPIPE would
        return 141
    except OSError as exc:  # only writing to stdout (a full disk) gets here: all else is handled
        where = exc.filename or "standard output"
        return _fail(f"cannot write to {where}: {reason(exc)}")


def _as_typed(text: str) -> str:
    """An argument as the user typed it: UTF-8, or else Latin-1 (not lone surrogates)."""
    raw = os.fsencode(text)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
